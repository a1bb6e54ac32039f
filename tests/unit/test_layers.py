import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import subprocess
import tarfile

import pytest

from app.runtime.images.layers import (
    DigestReader, LayerError, extract_layer, open_decompressed, write_layer_tar,
)
from app.common.fsutil import dir_size

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layer extraction needs root (mknod, chown, trusted xattrs)")


class NonSeekable:
    """Only read(), like an HTTP request body; returns short reads to exercise buffering."""

    def __init__(self, data: bytes, max_read: int = 7919):
        self._buf = io.BytesIO(data)
        self._max = max_read

    def read(self, n=-1):
        if n is None or n < 0:
            return self._buf.read()
        return self._buf.read(min(n, self._max))


def entry(name, kind="file", data=b"", mode=None, uid=0, gid=0, mtime=1_600_000_000, link="", pax=None):
    ti = tarfile.TarInfo(name)
    ti.uid, ti.gid, ti.mtime = uid, gid, mtime
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
               "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
               "fifo": tarfile.FIFOTYPE}[kind]
    ti.mode = mode if mode is not None else {"dir": 0o755, "sym": 0o777}.get(kind, 0o644)
    ti.linkname = link
    if pax:
        ti.pax_headers = dict(pax)
    if kind == "file":
        ti.size = len(data)
    return ti, data


def make_tar(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def extract_bytes(data: bytes, dest) -> int:
    os.makedirs(dest, exist_ok=True)
    return extract_layer(NonSeekable(data), str(dest))


def is_whiteout(path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def opaque(path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def read_tar(data: bytes) -> dict:
    """name -> (type, mode, uid, gid, mtime, linkname, content); a hardlink is reported as a regular
    file with its target's content (which member of a link group carries the data may differ)."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for ti in tf:
            if ti.islnk():
                typ, mode, uid, gid, mtime, _, content = out[ti.linkname]
                out[ti.name] = (typ, None, None, None, None, "", content)
                out[ti.linkname] = (typ, None, None, None, None, "", content)
                continue
            content = tf.extractfile(ti).read() if ti.isreg() else None
            out[ti.name] = (ti.type, ti.mode, ti.uid, ti.gid, int(ti.mtime), ti.linkname, content)
    return out


def sample_layer() -> bytes:
    return make_tar(
        entry("./", "dir"),
        entry("etc/", "dir", mode=0o750, uid=3, gid=4),
        entry("etc/passwd", data=b"root:x:0:0\n", mode=0o600, uid=5, gid=6, mtime=1_500_000_000),
        entry("etc/hard", "hard", link="etc/passwd"),
        entry("bin/sh", "sym", link="/usr/bin/dash"),
        entry("usr/", "dir", mode=0o1777),
        entry("usr/bin/exe", data=b"\x7fELF" * 1000, mode=0o4755),
        entry("usr/.wh.gone", data=b""),
        entry("opq/", "dir", mode=0o700),
        entry("opq/.wh..wh..opq"),
        entry("opq/kept", data=b"k"),
        entry("fifo", "fifo", mode=0o640),
        entry("big", data=os.urandom(3 << 20)),
        entry("x/attr", data=b"a", pax={"SCHILY.xattr.user.test": "hello",
                                       "SCHILY.xattr.trusted.overlay.redirect": "/evil"}),
        entry(".wh..wh.plnk", data=b""),
    )


# -- round trip ------------------------------------------------------------------------------------

def test_extract_translates_whiteouts_and_keeps_metadata(tmp_path):
    dest = tmp_path / "layer"
    total = extract_bytes(sample_layer(), dest)
    assert total == len(b"root:x:0:0\n") + 4000 + 1 + (3 << 20) + 1

    passwd = dest / "etc/passwd"
    st = os.lstat(passwd)
    assert passwd.read_bytes() == b"root:x:0:0\n"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == (0o600, 5, 6, 1_500_000_000)
    assert os.lstat(dest / "etc/hard").st_ino == st.st_ino
    etc = os.lstat(dest / "etc")
    assert (stat.S_IMODE(etc.st_mode), etc.st_uid, etc.st_gid, int(etc.st_mtime)) == (0o750, 3, 4, 1_600_000_000)
    assert os.readlink(dest / "bin/sh") == "/usr/bin/dash"
    assert int(os.lstat(dest / "bin/sh").st_mtime) == 1_600_000_000
    assert stat.S_IMODE(os.lstat(dest / "bin").st_mode) == 0o755          # implicit parent
    assert stat.S_IMODE(os.lstat(dest / "usr").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(dest / "usr/bin/exe").st_mode) == 0o4755
    assert not os.path.lexists(dest / "usr/.wh.gone")
    assert is_whiteout(dest / "usr/gone")
    assert opaque(dest / "opq") and not opaque(dest / "etc")
    assert sorted(os.listdir(dest / "opq")) == ["kept"]
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    assert os.getxattr(dest / "x/attr", "user.test") == b"hello"
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "x/attr")
    assert not os.path.lexists(dest / ".wh..wh.plnk") and not os.path.lexists(dest / "plnk")


def test_round_trip_through_write_layer_tar(tmp_path):
    src = sample_layer()
    dest = tmp_path / "layer"
    extract_bytes(src, dest)
    out = io.BytesIO()
    n = write_layer_tar(str(dest), out)
    data = out.getvalue()
    assert n == len(data) and n % 512 == 0

    orig, back = read_tar(src), read_tar(data)
    # the writer drops the root entry and AUFS bookkeeping, and names directories without a slash
    # once tarfile has parsed them; implicit parents ('bin', 'usr/bin', 'x') appear as directories.
    for name, (typ, mode, uid, gid, mtime, link, content) in orig.items():
        if name in (".", ".wh..wh.plnk"):
            continue
        assert name in back, name
        btyp, bmode, buid, bgid, bmtime, blink, bcontent = back[name]
        assert btyp == typ, name
        assert bcontent == content, name
        assert blink == link, name
        if mode is not None and bmode is not None and not os.path.basename(name).startswith(".wh."):
            assert (bmode, buid, bgid, bmtime) == (mode, uid, gid, mtime), name
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getmember("etc/passwd").linkname == "etc/hard"       # sorted: 'hard' < 'passwd'
        hard = tf.getmember("etc/hard")
        assert (hard.mode, hard.uid, hard.gid, hard.mtime) == (0o600, 5, 6, 1_500_000_000)
    assert set(back) - set(orig) == {"bin", "usr/bin", "x"}
    names = list(read_tar(data))
    assert names.index("opq") + 1 == names.index("opq/.wh..wh..opq")
    for i, name in enumerate(names):          # parents before children
        parent = os.path.dirname(name)
        assert not parent or names.index(parent) < i
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        xattrs = tf.getmember("x/attr").pax_headers
    assert xattrs.get("SCHILY.xattr.user.test") == "hello"
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in xattrs)

    # deterministic, and re-extracting gives the same tree again
    again = io.BytesIO()
    write_layer_tar(str(dest), again)
    assert again.getvalue() == data
    dest2 = tmp_path / "layer2"
    extract_bytes(data, dest2)
    third = io.BytesIO()
    write_layer_tar(str(dest2), third)
    assert third.getvalue() == data
    assert is_whiteout(dest2 / "usr/gone") and opaque(dest2 / "opq")


def test_write_layer_tar_raw_names_and_hardlinks(tmp_path):
    src = tmp_path / "upper"
    (src / "d/e").mkdir(parents=True)
    (src / "d/e/f").write_bytes(b"F")
    os.link(src / "d/e/f", src / "a-link")
    os.symlink("../../etc/x", src / "d/s")
    os.mknod(src / "d/gone", stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(src / "d", "trusted.overlay.opaque", b"y")
    os.setxattr(src / "d", "trusted.overlay.origin", b"junk")
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    out = io.BytesIO()
    write_layer_tar(str(src), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        members = tf.getmembers()
        raw_names = [m.name for m in members]
        by = {m.name: m for m in members}
        assert raw_names == ["a-link", "d", "d/.wh..wh..opq", "d/.wh.gone", "d/e", "d/e/f", "d/s", "null"]
        assert by["a-link"].isreg() and by["d/e/f"].islnk() and by["d/e/f"].linkname == "a-link"
        assert by["d/.wh.gone"].isreg() and by["d/.wh.gone"].size == 0
        assert by["d/s"].issym() and by["d/s"].linkname == "../../etc/x"
        assert by["null"].ischr() and (by["null"].devmajor, by["null"].devminor) == (1, 3)
        assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in by["d"].pax_headers)
    # raw header names: relative, no './', directories end with '/'
    raw = out.getvalue()
    for m in members:
        field = raw[m.offset:m.offset + 100].rstrip(b"\0")
        assert not field.startswith((b"./", b"/")) and field.endswith(b"/") == m.isdir(), field


def test_odd_names_long_paths_and_big_ids_round_trip(tmp_path):
    src = tmp_path / "src"
    long_dir = src / ("d" * 120) / ("e" * 120)
    long_dir.mkdir(parents=True)
    raw_name = os.fsdecode(b"caf\xe9-\xff.txt")             # not valid UTF-8
    (long_dir / raw_name).write_bytes(b"latin-1 name")
    (src / "\u00fcml\u00e4ut \u2603").write_bytes(b"utf-8 name")
    os.symlink("x" * 200, src / "longlink")
    os.chown(src / "longlink", 3_000_000, 3_000_001, follow_symlinks=False)
    os.setxattr(src / "\u00fcml\u00e4ut \u2603", "user.bin", b"\x00\xff\xfe binary")
    out = io.BytesIO()
    write_layer_tar(str(src), out)
    dest = tmp_path / "dest"
    extract_bytes(out.getvalue(), dest)
    assert (dest / ("d" * 120) / ("e" * 120) / raw_name).read_bytes() == b"latin-1 name"
    assert os.getxattr(dest / "\u00fcml\u00e4ut \u2603", "user.bin") == b"\x00\xff\xfe binary"
    st = os.lstat(dest / "longlink")
    assert os.readlink(dest / "longlink") == "x" * 200 and (st.st_uid, st.st_gid) == (3_000_000, 3_000_001)
    again = io.BytesIO()
    write_layer_tar(str(dest), again)
    assert again.getvalue() == out.getvalue()


def test_huge_extended_header_is_refused(tmp_path):
    ti = tarfile.TarInfo("././@PaxHeader")
    ti.type, ti.size = tarfile.XHDTYPE, 1 << 30
    with pytest.raises(LayerError, match="too large"):
        extract_bytes(ti.tobuf(tarfile.USTAR_FORMAT) + b"\0" * 4096, tmp_path / "l")


def test_dir_size(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/f").write_bytes(b"x" * 100)
    os.link(tmp_path / "a/f", tmp_path / "hard")
    (tmp_path / "g").write_bytes(b"y" * 23)
    os.symlink("/etc/passwd", tmp_path / "sym")
    # moby's directory.Size: every inode but directories once, a symlink by its own size (its target's length)
    assert dir_size(str(tmp_path)) == 123 + len("/etc/passwd")


def test_later_entries_replace_earlier_ones(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    data = make_tar(
        entry("d/", "dir", mode=0o700),
        entry("d/", "dir", mode=0o711, uid=7),
        entry("link", "sym", link=str(sentinel / "target")),
        entry("link", data=b"not through the symlink"),
        entry("dirfile/", "dir"),
        entry("dirfile/child", data=b"c"),
        entry("dirfile", data=b"now a file"),
        entry("w", data=b"soon whited out"),
        entry(".wh.w"),
    )
    dest = tmp_path / "layer"
    extract_bytes(data, dest)
    st = os.lstat(dest / "d")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o711, 7)
    assert (dest / "link").read_bytes() == b"not through the symlink" and not os.path.islink(dest / "link")
    assert (dest / "dirfile").read_bytes() == b"now a file"
    assert is_whiteout(dest / "w")
    assert os.listdir(sentinel) == []


def test_empty_stream_is_an_empty_layer(tmp_path):
    assert extract_bytes(b"", tmp_path / "l") == 0
    assert extract_bytes(make_tar(), tmp_path / "m") == 0
    assert os.listdir(tmp_path / "l") == [] and os.listdir(tmp_path / "m") == []


# -- compression -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,compress", [
    ("none", lambda b: b),
    ("gzip", gzip.compress),
    ("bzip2", bz2.compress),
    ("xz", lzma.compress),
])
def test_open_decompressed_detects_on_non_seekable_streams(tmp_path, kind, compress):
    tar = sample_layer()
    stream, detected = open_decompressed(NonSeekable(compress(tar)))
    assert detected == kind
    reader = DigestReader(stream)
    dest = tmp_path / "layer"
    dest.mkdir()
    extract_layer(reader, str(dest))
    reader.drain()
    assert reader.digest() == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert reader.size == len(tar)
    assert (dest / "etc/passwd").read_bytes() == b"root:x:0:0\n"


def test_open_decompressed_tiny_and_multi_member():
    stream, kind = open_decompressed(NonSeekable(b"ab"))
    assert (kind, stream.read()) == ("none", b"ab")
    stream, kind = open_decompressed(NonSeekable(b""))
    assert (kind, stream.read(10)) == ("none", b"")
    data = gzip.compress(b"one ") + gzip.compress(b"two") + b"\0" * 10
    stream, kind = open_decompressed(NonSeekable(data, max_read=1))
    assert (kind, stream.read()) == ("gzip", b"one two")
    stream, kind = open_decompressed(NonSeekable(bz2.compress(b"a") + bz2.compress(b"b")))
    assert (kind, stream.read()) == ("bzip2", b"ab")


def test_zstd_is_refused():
    with pytest.raises(LayerError, match="zstd-compressed layers are not supported"):
        open_decompressed(NonSeekable(b"\x28\xb5\x2f\xfd" + b"\0" * 20))


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_corrupt_or_truncated_compression_raises_layer_error(compress):
    payload = os.urandom(200_000)
    good = compress(payload)
    corrupt = bytearray(good)
    corrupt[len(good) // 2: len(good) // 2 + 64] = b"\xa5" * 64
    for bad in (bytes(corrupt), good[: len(good) // 2], good + b"garbage"):
        stream, _ = open_decompressed(NonSeekable(bad))
        with pytest.raises(LayerError):
            while stream.read(65536):
                pass


# -- digest ----------------------------------------------------------------------------------------

def test_digest_reader_hashes_and_copies(tmp_path):
    data = os.urandom(300_000)
    with open(tmp_path / "copy", "wb") as copy:
        r = DigestReader(NonSeekable(data), copy_to=copy)
        assert r.read(10) == data[:10]
        buf = bytearray(1000)
        n = r.readinto(buf)
        assert bytes(buf[:n]) == data[10:10 + n]
        assert r.drain() == len(data) - 10 - n
        assert r.read(5) == b""
    assert r.digest() == "sha256:" + hashlib.sha256(data).hexdigest()
    assert r.size == len(data)
    assert (tmp_path / "copy").read_bytes() == data


def test_digest_reader_with_extract_covers_trailing_padding(tmp_path):
    tar = sample_layer()            # tarfile pads the archive to a 10240-byte record
    with open(tmp_path / "blob", "wb") as blob:
        r = DigestReader(open_decompressed(NonSeekable(gzip.compress(tar)))[0], copy_to=blob)
        (tmp_path / "l").mkdir()
        extract_layer(r, str(tmp_path / "l"))
        r.drain()
    assert (tmp_path / "blob").read_bytes() == tar
    assert r.digest() == "sha256:" + hashlib.sha256(tar).hexdigest()


# -- refusals --------------------------------------------------------------------------------------

def refused_cases(outside: str):
    return {
        "dotdot": ([entry("../x", data=b"x")], "escapes the layer"),
        "dotdot-deep": ([entry("a/../../x", data=b"x")], "escapes the layer"),
        "absolute": ([entry(outside + "/x", data=b"x")], "absolute"),
        "symlink-abs-parent": ([entry("link", "sym", link=outside), entry("link/evil", data=b"x")], "symlink"),
        "symlink-rel-parent": ([entry("link", "sym", link="../.."), entry("link/evil", data=b"x")], "symlink"),
        "symlink-tmp-parent": ([entry("d/link", "sym", link="/tmp"), entry("d/link/evil", data=b"x")], "symlink"),
        "symlink-opaque": ([entry("link", "sym", link=outside), entry("link/.wh..wh..opq")], "symlink"),
        "symlink-whiteout": ([entry("link", "sym", link=outside), entry("link/.wh.evil")], "symlink"),
        "symlink-dir": ([entry("link", "sym", link=outside), entry("link/sub/", "dir")], "symlink"),
        "hardlink-outside": ([entry("h", "hard", link="../sentinel/x")], "escapes the layer"),
        "hardlink-absolute": ([entry("h", "hard", link="/etc/passwd")], "absolute"),
        "hardlink-via-symlink": ([entry("link", "sym", link="/etc"), entry("h", "hard", link="link/passwd")],
                                 "symlink"),
        "hardlink-missing": ([entry("h", "hard", link="nope")], "not in the layer"),
        "chardev": ([entry("dev/null", "chr")], "device nodes are not allowed in layers"),
        "blockdev": ([entry("dev/sda", "blk")], "device nodes are not allowed in layers"),
    }


@pytest.mark.parametrize("case", list(refused_cases("/x")))
def test_refused_entries_write_nothing_outside(tmp_path, case):
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    entries, message = refused_cases(str(sentinel))[case]
    dest = tmp_path / "layer"
    with pytest.raises(LayerError, match=message) as exc:
        extract_bytes(make_tar(entry("ok", data=b"fine"), *entries), dest)
    assert "invalid tar entry" in str(exc.value)
    assert os.listdir(sentinel) == []
    assert sorted(os.listdir(tmp_path)) == ["layer", "sentinel"]
    assert os.path.exists("/etc/passwd") and not os.path.lexists("/tmp/evil")


def test_truncated_and_corrupt_tars(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    good = make_tar(entry("a", data=os.urandom(5000)), entry("b", data=b"b" * 3000))
    with tarfile.open(fileobj=io.BytesIO(good)) as tf:
        second = tf.getmember("b").offset
        end = tf.getmember("b").offset_data + 3072
    junk_header, junk_trailer = bytearray(good), bytearray(good)
    junk_header[second:second + 512] = b"\x01" * 512    # second header replaced by junk
    junk_trailer[end:end + 512] = b"\x01" * 512          # end-of-archive block replaced by junk
    cases = [good[:3000], good[:512], good[:second], good[:second + 300], good[:end], good[:end - 1],
             bytes(junk_header), bytes(junk_trailer), b"not a tar at all" * 40]
    for i, bad in enumerate(cases):
        with pytest.raises(LayerError, match="invalid tar archive"):
            extract_bytes(bad, tmp_path / f"l{i}")
    assert os.listdir(sentinel) == []


def test_corrupt_gzip_layer(tmp_path):
    gz = bytearray(gzip.compress(sample_layer()))
    gz[len(gz) // 3: len(gz) // 3 + 100] = os.urandom(100)
    stream, kind = open_decompressed(NonSeekable(bytes(gz)))
    assert kind == "gzip"
    (tmp_path / "l").mkdir()
    with pytest.raises(LayerError):
        r = DigestReader(stream)
        extract_layer(r, str(tmp_path / "l"))
        r.drain()
    truncated = gzip.compress(sample_layer())[:-20]
    (tmp_path / "m").mkdir()
    with pytest.raises(LayerError):
        r = DigestReader(open_decompressed(NonSeekable(truncated))[0])
        extract_layer(r, str(tmp_path / "m"))
        r.drain()


# -- overlayfs -------------------------------------------------------------------------------------

def test_layers_stack_in_a_real_overlay_mount(tmp_path):
    lower, upper, merged = tmp_path / "lower", tmp_path / "upper", tmp_path / "merged"
    merged.mkdir()
    extract_bytes(make_tar(entry("a", data=b"A"), entry("d/", "dir"), entry("d/x", data=b"X"),
                           entry("keep", data=b"K")), lower)
    extract_bytes(make_tar(entry(".wh.a"), entry("d/", "dir"), entry("d/.wh..wh..opq"),
                           entry("d/y", data=b"Y")), upper)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={upper}:{lower}", str(merged)],
                   check=True, capture_output=True)
    try:
        assert sorted(os.listdir(merged)) == ["d", "keep"]
        assert not os.path.lexists(merged / "a")
        assert os.listdir(merged / "d") == ["y"]
        assert (merged / "d/y").read_bytes() == b"Y"
        assert (merged / "keep").read_bytes() == b"K"
    finally:
        subprocess.run(["umount", str(merged)], check=True)
