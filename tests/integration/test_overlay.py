"""Container root filesystems on a real overlay mount, and `docker diff` from the upper dir."""
import os

import pytest

from app.runtime.host.overlay import changes, is_mounted, mount_rootfs, unmount_rootfs


@pytest.fixture
def layers(workdir):
    bottom, top = os.path.join(workdir, "l1"), os.path.join(workdir, "l2")
    os.makedirs(os.path.join(bottom, "etc"))
    os.makedirs(os.path.join(bottom, "data", "old"))
    for rel, text in (("etc/passwd", "root"), ("etc/motd", "hi"), ("data/old/x", "1"), ("bin-sh", "sh")):
        with open(os.path.join(bottom, rel), "w") as fh:
            fh.write(text)
    os.makedirs(os.path.join(top, "etc"))
    with open(os.path.join(top, "etc", "motd"), "w") as fh:
        fh.write("top wins")
    return [bottom, top]


def test_mount_write_diff_unmount(workdir, layers):
    cdir = os.path.join(workdir, "c1")
    rootfs = mount_rootfs(cdir, layers)
    try:
        assert is_mounted(rootfs)
        assert mount_rootfs(cdir, layers) == rootfs             # idempotent
        with open(os.path.join(rootfs, "etc", "motd")) as fh:
            assert fh.read() == "top wins"                      # the upper layer shadows the lower
        with open(os.path.join(rootfs, "NEW-FILE"), "w") as fh:
            fh.write("x")
        with open(os.path.join(rootfs, "etc", "passwd"), "a") as fh:
            fh.write("\nme")
        os.unlink(os.path.join(rootfs, "bin-sh"))
        os.makedirs(os.path.join(rootfs, "newdir", "sub"))
        import shutil
        shutil.rmtree(os.path.join(rootfs, "data"))
        os.makedirs(os.path.join(rootfs, "data"))                 # recreated: opaque over the image's
        assert changes(os.path.join(cdir, "upper"), layers) == [
            ("A", "/NEW-FILE"), ("D", "/bin-sh"), ("C", "/data"), ("D", "/data/old"), ("C", "/etc"),
            ("C", "/etc/passwd"), ("A", "/newdir"), ("A", "/newdir/sub")]
    finally:
        unmount_rootfs(cdir)
    assert not is_mounted(rootfs)
    unmount_rootfs(cdir)                                        # nothing mounted: a no-op
    with open(os.path.join(layers[0], "etc", "passwd")) as fh:
        assert fh.read() == "root"                              # the image layers were never touched


def test_busy_mount_is_detached(workdir, layers):
    cdir = os.path.join(workdir, "c2")
    rootfs = mount_rootfs(cdir, layers)
    fh = open(os.path.join(rootfs, "etc", "passwd"))
    try:
        unmount_rootfs(cdir)
        assert not is_mounted(rootfs)
    finally:
        fh.close()
