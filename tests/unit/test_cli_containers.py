"""Our CLI's container-flag handling that needs no daemon: --env-file and -e as the docker CLI reads them."""
from __future__ import annotations

import pytest

from app.cli.containers import _env_flag, read_env_file
from app.cli.main import build_parser


def test_env_file_keeps_values_as_written_and_looks_up_bare_names(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_ENV", "x y")
    monkeypatch.delenv("NOT_SET", raising=False)
    path = tmp_path / "env"
    path.write_bytes("\ufeffA=1\n  # a comment\n\n   B=two words  \nFROM_ENV\nNOT_SET\nC=\nD==x\n".encode())
    assert read_env_file(str(path)) == ["A=1", "B=two words  ", "FROM_ENV=x y", "C=", "D==x"]


@pytest.mark.parametrize("content,message", [
    (b"B = 2\n", "variable 'B ' contains whitespaces"),
    (b"A=1\n=x\n", "no variable name on line '=x'"),
    (b"A=1\nB=\xff\n", "invalid utf8 bytes at line 2: [66 61 255]"),
])
def test_env_file_errors_are_the_docker_cli_s(tmp_path, content, message):
    path = tmp_path / "env"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        read_env_file(str(path))
    assert str(err.value) == f"invalid env file ({path}): {message}"


def test_missing_env_file(tmp_path):
    with pytest.raises(ValueError, match="no such file or directory"):
        read_env_file(str(tmp_path / "nope"))


def test_bare_e_takes_our_value_when_set(monkeypatch):
    monkeypatch.setenv("FOO", "bar")
    monkeypatch.delenv("NOPE", raising=False)
    assert [_env_flag(v) for v in ("FOO", "NOPE", "X=1", "FOO=")] == ["FOO=bar", "NOPE", "X=1", "FOO="]


def test_env_files_come_before_e_flags_so_e_wins(tmp_path):
    from app.cli.containers import _create_body
    path = tmp_path / "env"
    path.write_text("A=file\nB=file\n")
    argv = ["create", "--env-file", str(path), "-e", "A=flag", "busybox"]
    body = _create_body(build_parser(argv).parse_args(argv))
    assert body["Env"] == ["A=file", "B=file", "A=flag"]
