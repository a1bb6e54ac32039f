"""app/runtime/host/rootpath.py: paths resolved as the container sees them."""
import io
import os
import tarfile

import pytest

from app.runtime.host import rootpath


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "only-here").write_text("mine")
    (r / "data").mkdir()
    (r / "data" / "f").write_text("file")
    os.symlink("/etc", r / "abs")
    os.symlink("../../../../../../etc", r / "up")
    os.symlink("/nowhere", r / "dangling")
    fd = os.open(r, os.O_RDONLY | os.O_DIRECTORY)
    yield str(r), fd
    os.close(fd)


@pytest.mark.parametrize("given,expected", [("x", "/x"), ("/a/../b", "/b"), ("/etc/", "/etc/"),
                                            ("/etc/.", "/etc/."), ("/", "/"), (".", "/."), ("../../x", "/x")])
def test_abs_path(given, expected):
    assert rootpath.abs_path(given) == expected


def test_go_file_mode():
    import stat
    assert rootpath.go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert rootpath.go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert rootpath.go_file_mode(stat.S_IFREG | 0o4755) == (1 << 23) | 0o755
    assert rootpath.go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666


def test_symlinks_resolve_in_the_root(root):
    path, fd = root
    for link in ("abs", "up"):
        found = rootpath.lookup(fd, f"/{link}/only-here")
        assert found.base == "only-here" and found.st.st_size == 4
        found.close()
        found = rootpath.lookup(fd, f"/{link}")                 # the link itself, not followed
        assert found.name == link and os.path.stat.S_ISLNK(found.st.st_mode)
        assert rootpath.link_target(fd, path, f"/{link}", found) == "/etc"
        found.close()
    with pytest.raises(FileNotFoundError):
        rootpath.lookup(fd, "/up/passwd")                       # the host's /etc/passwd is never reached
    found = rootpath.lookup(fd, "/dangling")
    assert rootpath.link_target(fd, path, "/dangling", found) == "/nowhere"
    found.close()
    with pytest.raises(NotADirectoryError):
        rootpath.lookup(fd, "/data/f/x")


def test_tar_entry_names_and_contents(root):
    _, fd = root
    found = rootpath.lookup(fd, "/abs/")
    data = b"".join(rootpath.tar_entry(found, found.name))
    found.close()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getnames() == ["abs", "abs/only-here"]
    found = rootpath.lookup(fd, "/data/.")
    data = b"".join(rootpath.tar_entry(found, found.name))
    found.close()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getnames() == [".", "./f"]
        assert tf.extractfile("./f").read() == b"file"


def test_lookup_user(root):
    path, fd = root
    with open(os.path.join(path, "etc", "passwd"), "w") as fh:
        fh.write("root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/sh\n")
    with open(os.path.join(path, "etc", "group"), "w") as fh:
        fh.write("staff:x:50:\n")
    assert rootpath.lookup_user(fd, "") == (0, 0)
    assert rootpath.lookup_user(fd, "www") == (33, 34)
    assert rootpath.lookup_user(fd, "33") == (33, 34)
    assert rootpath.lookup_user(fd, "www:staff") == (33, 50)
    assert rootpath.lookup_user(fd, "1000:7") == (1000, 7)
    with pytest.raises(KeyError):
        rootpath.lookup_user(fd, "nobody-here")
