"""The CLI builds only the parser of the command it runs; what that parser accepts and prints must
be exactly what the full parser would."""
from __future__ import annotations

import pytest

from app.cli.main import _command_name, build_parser

FULL = build_parser()
SUBPARSERS = FULL._subparsers._group_actions[0].choices


def test_command_word_is_found_past_global_options():
    assert _command_name(["ps", "-a"]) == "ps"
    assert _command_name(["-H", "unix:///x", "run", "-d", "busybox"]) == "run"
    assert _command_name(["--host", "tcp://h:1", "images"]) == "images"
    assert _command_name(["--host=tcp://h:1", "-Hunix:///y", "rm", "-f", "x"]) == "rm"
    assert _command_name(["--help"]) is None and _command_name([]) is None and _command_name(["-H"]) is None


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
def test_each_command_parser_alone_is_the_full_ones(command):
    alone = build_parser([command])
    alone_sub = alone._subparsers._group_actions[0].choices
    if command == "help":
        assert set(alone_sub) == set(SUBPARSERS)          # `help` needs them all
        return
    assert set(alone_sub) == {command}
    assert alone_sub[command].format_help() == SUBPARSERS[command].format_help()


@pytest.mark.parametrize("argv", [
    ["run", "-d", "--rm", "-e", "A=1", "--name", "x", "busybox", "sh", "-c", "exit 3"],
    ["-H", "unix:///s", "ps", "-a", "-q", "--filter", "status=exited"],
    ["image", "ls", "-a"],
    ["logs", "-f", "--tail", "5", "c"],
])
def test_lines_parse_the_same(argv):
    alone, full = vars(build_parser(argv).parse_args(argv)), vars(FULL.parse_args(argv))
    alone.pop("func"), full.pop("func")                   # the same function, bound by two builds
    assert alone == full


def test_an_unknown_command_is_reported_with_the_real_ones(capsys):
    with pytest.raises(SystemExit):
        build_parser(["nosuch"]).parse_args(["nosuch"])
    err = capsys.readouterr().err
    assert "invalid choice: 'nosuch'" in err and "'run'" in err and "'images'" in err
