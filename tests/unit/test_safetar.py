"""app/runtime/host/safetar.py: the one extractor that writes archives onto the host."""
from __future__ import annotations

import io
import os
import stat

import pytest

from app.runtime.host import safetar
from tests.reliability import hostile
from tests.reliability.hostile import entry, make_tar


def run(data: bytes, root, **kw) -> int:
    os.makedirs(root, exist_ok=True)
    return safetar.extract(io.BytesIO(data), str(root), **kw)


@pytest.fixture
def canary(tmp_path):
    c = tmp_path / "canary"
    c.mkdir()
    (c / "victim").write_text("original\n")
    return c


def test_issue_chain_cannot_leave_the_root(tmp_path, canary):
    up = "../" * hostile.DEPTH
    data = make_tar(entry("s", "sym", link="."), entry("/".join(["s"] * 12) + "/t", "sym", link=up),
                    entry(f"t/{str(canary).lstrip('/')}/x-pwned", data=b"pwned"))
    with pytest.raises(safetar.ArchiveError, match='through symlink "s"'):
        run(data, tmp_path / "root")
    assert sorted(os.listdir(canary)) == ["victim"]


@pytest.mark.parametrize("case", [k for k, (_, exp) in hostile.cases("/nonexistent-canary").items()
                                  if exp == "refused"])
def test_every_refused_case_of_the_corpus_is_refused(tmp_path, canary, case):
    data, _ = hostile.cases(str(canary))[case]
    with pytest.raises(safetar.ArchiveError, match="invalid tar"):
        run(data, tmp_path / "root")
    assert sorted(os.listdir(canary)) == ["victim"] and (canary / "victim").read_text() == "original\n"


def test_symlink_replaced_by_a_file_is_unlinked_not_written_through(tmp_path, canary):
    run(make_tar(entry("f", "sym", link=str(canary / "victim")), entry("f", data=b"new")), tmp_path / "r")
    assert (canary / "victim").read_text() == "original\n"
    assert not os.path.islink(tmp_path / "r" / "f") and (tmp_path / "r" / "f").read_bytes() == b"new"


def test_directory_replaced_by_a_symlink_then_a_file_inside(tmp_path, canary):
    data = make_tar(entry("d", "dir"), entry("d/old", data=b"1"), entry("d", "sym", link=str(canary)),
                    entry("d/x", data=b"x"))
    with pytest.raises(safetar.ArchiveError, match='through symlink "d"'):
        run(data, tmp_path / "r")
    assert sorted(os.listdir(canary)) == ["victim"]


def test_hardlink_to_a_symlink_links_the_symlink_itself(tmp_path, canary):
    run(make_tar(entry("l", "sym", link=str(canary / "victim")), entry("h", "hard", link="l")), tmp_path / "r")
    st_l, st_h = os.lstat(tmp_path / "r" / "l"), os.lstat(tmp_path / "r" / "h")
    assert stat.S_ISLNK(st_h.st_mode) and st_h.st_ino == st_l.st_ino
    assert os.stat(canary / "victim").st_nlink == 1


def test_metadata_hardlinks_and_nested_dirs_are_kept(tmp_path):
    f = entry("a/b/c/file", data=b"data")
    f[0].uid, f[0].gid, f[0].mode, f[0].mtime = 1234, 5678, 0o4751, 1_000_000
    run(make_tar(f, entry("a/b/h", "hard", link="a/b/c/file"), entry("a/fifo", "fifo")), tmp_path / "r")
    st = os.lstat(tmp_path / "r/a/b/c/file")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime) == (1234, 5678, 0o4751, 1_000_000)
    assert st.st_nlink == 2 and stat.S_ISFIFO(os.lstat(tmp_path / "r/a/fifo").st_mode)


def test_on_entry_can_take_links_without_creating_them(tmp_path):
    seen = []
    run(make_tar(entry("l", "sym", link="/etc"), entry("f", data=b"x")), tmp_path / "r",
        on_entry=lambda parts, ti: seen.append("/".join(parts)) or ti.issym())
    assert seen == ["l", "f"] and os.listdir(tmp_path / "r") == ["f"]


def test_size_bound_refuses_a_claim_before_writing(tmp_path):
    with pytest.raises(safetar.ArchiveTooLarge, match="--max-upload-size"):
        run(make_tar(entry("big", data=b"tiny", size=100 << 30)), tmp_path / "r",
            limits=safetar.Limits(max_bytes=1 << 30))
    assert os.listdir(tmp_path / "r") == []


def test_size_bound_counts_uncompressed_bytes_read(tmp_path):
    data = make_tar(*[entry(f"f{i}", data=b"x" * 1000) for i in range(200)])
    with pytest.raises(safetar.ArchiveTooLarge):
        run(data, tmp_path / "r", limits=safetar.Limits(max_bytes=50_000))


def test_free_space_floor(tmp_path):
    with pytest.raises(safetar.ArchiveTooLarge, match="--min-free-space"):
        run(make_tar(entry("f")), tmp_path / "r", limits=safetar.Limits(min_free=1 << 60))


@pytest.mark.parametrize("data", [hostile.gnu_sparse("s", 2 << 30), hostile.pax_sparse("s", 1 << 40, "0.1"),
                                  hostile.pax_sparse("s", 1 << 40, "1.0")])
def test_sparse_entries_are_refused_at_once(tmp_path, data):
    with pytest.raises(safetar.ArchiveError, match='"s": sparse files are not supported'):
        run(data, tmp_path / "r")
    assert os.listdir(tmp_path / "r") == []


def test_openat2_refuses_symlinks_and_escapes(tmp_path):
    (tmp_path / "d").mkdir()
    os.symlink("/etc", tmp_path / "link")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(safetar.openat2(fd, "d", os.O_RDONLY | os.O_DIRECTORY))
        for path, code in (("link/passwd", 40), ("../x", 18), ("/etc/passwd", 18)):
            with pytest.raises(OSError) as err:
                safetar.openat2(fd, path, os.O_RDONLY)
            assert err.value.errno == code, path       # ELOOP, EXDEV
    finally:
        os.close(fd)
