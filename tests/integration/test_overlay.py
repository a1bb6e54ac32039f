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


def _deep_layers(workdir: str, count: int) -> list[str]:
    """`count` layer dirs with store-length paths (…/layers/<64 hex>/diff), each adding layer-NNN and
    overwriting /which; the bottom one also has /bottom."""
    dirs = []
    for i in range(count):
        path = os.path.join(workdir, "image", "layers", f"{i:064x}", "diff")
        os.makedirs(path)
        for name, text in ((f"layer-{i:03d}", str(i)), ("which", str(i))) + ((("bottom", "b"),) if i == 0 else ()):
            with open(os.path.join(path, name), "w") as fh:
                fh.write(text)
        dirs.append(path)
    return dirs


@pytest.mark.parametrize("legacy", [False, True], ids=["lowerdir+", "mount2-fds"])
def test_120_layers_mount_past_one_page_of_options(workdir, legacy):
    from app.runtime.host.overlay import PAGE, lowerdir_plus, mount_overlay
    if not legacy and not lowerdir_plus():
        pytest.skip("this kernel's overlayfs has no lowerdir+ (Linux 6.8)")
    lowers = _deep_layers(workdir, 120)
    assert len("lowerdir=" + ":".join(lowers)) > PAGE          # the plain option string cannot work
    cdir = os.path.join(workdir, "c")
    for d in ("upper", "work", "rootfs"):
        os.makedirs(os.path.join(cdir, d))
    rootfs = os.path.join(cdir, "rootfs")
    fds_before = len(os.listdir("/proc/self/fd"))
    mount_overlay(lowers, os.path.join(cdir, "upper"), os.path.join(cdir, "work"), rootfs, legacy=legacy)
    assert len(os.listdir("/proc/self/fd")) == fds_before         # no fd outlives the mount call
    try:
        names = os.listdir(rootfs)
        assert {"bottom", "layer-000", "layer-119"} <= set(names) and len(names) == 122
        with open(os.path.join(rootfs, "which")) as fh:
            assert fh.read() == "119"                              # the top layer wins
        os.unlink(os.path.join(rootfs, "layer-050"))
        with open(os.path.join(rootfs, "new"), "w") as fh:
            fh.write("x")
        assert changes(os.path.join(cdir, "upper"), lowers) == [("D", "/layer-050"), ("A", "/new")]
    finally:
        unmount_rootfs(cdir)
    assert not is_mounted(rootfs)


def test_too_many_layers_are_refused_before_mounting(workdir):
    from app.runtime.host.overlay import MAX_LOWER_LAYERS, MountError, mount_overlay
    cdir = os.path.join(workdir, "c")
    for d in ("upper", "work", "rootfs"):
        os.makedirs(os.path.join(cdir, d))
    args = (os.path.join(cdir, "upper"), os.path.join(cdir, "work"), os.path.join(cdir, "rootfs"))
    with pytest.raises(MountError, match="at most 500"):
        mount_overlay([workdir] * (MAX_LOWER_LAYERS + 1), *args)
    with pytest.raises(MountError, match="exceed one page"):     # mount(2) runs out of page at ~200
        mount_overlay([workdir] * 300, *args, legacy=True)
    assert not is_mounted(args[2])


def test_a_missing_layer_names_the_kernels_reason(workdir):
    from app.runtime.host.overlay import MountError, lowerdir_plus, mount_overlay
    if not lowerdir_plus():
        pytest.skip("this kernel's overlayfs has no lowerdir+ (Linux 6.8)")
    cdir = os.path.join(workdir, "c")
    for d in ("upper", "work", "rootfs"):
        os.makedirs(os.path.join(cdir, d))
    missing = os.path.join(workdir, "no-such-layer")
    with pytest.raises(MountError) as info:
        mount_overlay([workdir, missing], os.path.join(cdir, "upper"), os.path.join(cdir, "work"),
                      os.path.join(cdir, "rootfs"))
    assert missing in str(info.value)
    assert not is_mounted(os.path.join(cdir, "rootfs"))


def test_fsconfig_probe_says_no_to_an_unknown_option():
    from app.runtime.host import fsmount
    from app.runtime.host.overlay import lowerdir_plus
    assert fsmount.supports_option("overlay", "no-such-option", "x") is False   # nothing mounted, no error
    assert fsmount.supports_option("overlay", "workdir", "/") is True
    assert lowerdir_plus() == fsmount.supports_option("overlay", "lowerdir+", "/")
