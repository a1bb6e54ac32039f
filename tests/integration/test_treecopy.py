"""app/runtime/host/treecopy.py, the volume copy-in, against `cp -a` on the same tree read through
overlayfs (what a container's root is): every kind of entry and attribute cp -a keeps, the same
result; symlinks in the source never followed."""
from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess

import pytest

from app.runtime.host.treecopy import copy_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners, devices, overlay)")

# a file capability (cap_net_bind_service+ep), version 2 of vfs_cap_data
CAP = bytes.fromhex("01000002" "00040000" "00000000" "00000000" "00000000")
# an access ACL: user::rw-, user:1234:r--, group::r--, mask::r--, other::---
ACL = bytes.fromhex("02000000" "0100" "0600" "ffffffff" "0200" "0400" "d2040000"
                    "0400" "0400" "ffffffff" "1000" "0400" "ffffffff" "2000" "0000" "ffffffff")


def build(root: str) -> None:
    os.makedirs(f"{root}/a/b/c")
    os.chmod(f"{root}/a", 0o750)
    os.chown(f"{root}/a", 33, 34)
    os.chmod(f"{root}/a/b", 0o2775)                        # setgid dir
    os.makedirs(f"{root}/tmp")
    os.chmod(f"{root}/tmp", 0o1777)                        # sticky
    with open(f"{root}/a/owned", "wb") as fh:
        fh.write(b"owned\n")
    os.chown(f"{root}/a/owned", 1000, 1001)
    os.chmod(f"{root}/a/owned", 0o640)
    with open(f"{root}/a/b/c/deep", "wb") as fh:
        fh.write(os.urandom(300_000))
    with open(f"{root}/suid", "wb") as fh:
        fh.write(b"#!/bin/sh\n")
    os.chown(f"{root}/suid", 0, 50)
    os.chmod(f"{root}/suid", 0o6755)
    with open(f"{root}/capped", "wb") as fh:
        fh.write(b"cap")
    os.chown(f"{root}/capped", 7, 7)
    os.setxattr(f"{root}/capped", "security.capability", CAP)
    with open(f"{root}/tagged", "wb") as fh:
        fh.write(b"t")
    os.setxattr(f"{root}/tagged", "user.berth", b"yes")
    os.setxattr(f"{root}/a", "user.dir", b"d")
    with open(f"{root}/acl", "wb") as fh:
        fh.write(b"acl")
    os.setxattr(f"{root}/acl", "system.posix_acl_access", ACL)
    open(f"{root}/empty", "wb").close()
    with open(f"{root}/sparse", "wb") as fh:
        fh.seek(8 << 20)
        fh.write(b"end")
        fh.seek(1 << 20)
        fh.write(b"middle")
    with open(f"{root}/big", "wb") as fh:
        fh.write(os.urandom(3 << 20))
    os.link(f"{root}/a/owned", f"{root}/a/b/hard")          # hard links across directories
    os.link(f"{root}/a/owned", f"{root}/hard2")
    os.symlink("owned", f"{root}/a/rel")
    os.symlink("/etc/passwd", f"{root}/abs")               # would lead out if followed
    os.symlink("../../../../..", f"{root}/a/b/up")
    os.symlink("/", f"{root}/rootlink")
    os.lchown(f"{root}/abs", 5, 6)
    os.mkfifo(f"{root}/fifo", 0o620)
    os.mknod(f"{root}/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(f"{root}/sock")
    sock.close()
    for n, path in enumerate(["a/owned", "a/b/c/deep", "suid", "big", "a/b/c", "a/b", "a", "tmp"]):
        os.utime(f"{root}/{path}", ns=(1_600_000_000_123_456_789 + n, 1_500_000_000_987_654_321 + n))
    os.utime(f"{root}/abs", ns=(1_400_000_000_000_000_001, 1_400_000_000_000_000_002), follow_symlinks=False)


def manifest(root: str) -> dict:
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [""] + dirnames + filenames:
            path = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(path, root)
            if name == "" and dirpath != root:
                continue
            st = os.lstat(path)
            item = {"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns,
                    "xattrs": {x: os.getxattr(path, x, follow_symlinks=False)
                               for x in sorted(os.listxattr(path, follow_symlinks=False))}}
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    item["sha"] = hashlib.sha256(fh.read()).hexdigest()
                item["size"] = st.st_size
                item["sparse"] = st.st_blocks * 512 < st.st_size
                if st.st_nlink == 1:                # (reading one name of a linked inode moves its atime)
                    item["atime"] = st.st_atime_ns
                item["links"] = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else None
            elif stat.S_ISLNK(st.st_mode):
                item["target"] = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                item["rdev"] = st.st_rdev
            out[rel] = item
    return out


@pytest.fixture
def overlay_tree(tmp_path):
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    build(str(lower / "src"))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)], check=True)
    try:
        yield tmp_path, str(merged / "src")
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def copy(src: str, dst: str) -> None:
    os.mkdir(dst)
    sfd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    dfd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        copy_tree(sfd, dfd)
    finally:
        os.close(sfd)
        os.close(dfd)


def test_same_result_as_cp_a_through_overlay(overlay_tree):
    tmp, src = overlay_tree
    ours, theirs = str(tmp / "ours"), str(tmp / "theirs")
    copy(src, ours)
    os.mkdir(theirs)
    subprocess.run(["cp", "-a", "--", src + "/.", theirs + "/"], check=True)
    mine, cp = manifest(ours), manifest(theirs)
    assert mine == cp
    # and what was asked, said once more plainly
    assert mine["."]["mode"] == oct(stat.S_IFDIR | 0o755)
    assert mine["a"] == {**mine["a"], "mode": oct(stat.S_IFDIR | 0o750), "uid": 33, "gid": 34,
                         "xattrs": {"user.dir": b"d"}}
    assert mine["suid"]["mode"] == oct(stat.S_IFREG | 0o6755) and mine["suid"]["gid"] == 50
    assert mine["capped"]["xattrs"]["security.capability"] == CAP and mine["capped"]["uid"] == 7
    assert mine["acl"]["xattrs"]["system.posix_acl_access"] == ACL
    assert mine["sparse"]["sparse"] and mine["sparse"]["size"] == (8 << 20) + 3
    assert mine["a/b/hard"]["links"] == mine["hard2"]["links"] == mine["a/owned"]["links"] is not None
    assert mine["abs"] == {**mine["abs"], "target": "/etc/passwd", "uid": 5, "gid": 6,
                           "mtime": 1_400_000_000_000_000_002}
    assert mine["null"]["rdev"] == os.makedev(1, 3)
    assert stat.S_ISFIFO(int(mine["fifo"]["mode"], 8)) and stat.S_ISSOCK(int(mine["sock"]["mode"], 8))
    assert mine["a/b/c/deep"]["mtime"] == 1_500_000_000_987_654_322


def test_symlinks_in_the_source_are_never_followed(overlay_tree):
    tmp, src = overlay_tree
    ours = str(tmp / "ours")
    copy(src, ours)
    assert sorted(manifest(ours)) == sorted(manifest(src))     # nothing more than the tree itself
    for link in ("rootlink", "abs", "a/b/up"):
        assert os.path.islink(os.path.join(ours, link))
