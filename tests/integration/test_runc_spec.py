"""The spec builder, the overlay rootfs and the image store together under the real runc: the pieces
`run` will be made of, proven before the container API exists."""
import json
import os
import shutil
import subprocess
import uuid

import pytest

from app.config import Config
from app.engine import Engine
from app.runtime.ocispec import build_spec
from app.runtime.overlay import mount_rootfs, unmount_rootfs
from app.runtime.runc import Runc, parse_signal

RUNC = shutil.which("runc")
pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


@pytest.fixture
def image_layers(workdir, busybox_tar):
    engine = Engine(Config(data_root=os.path.join(workdir, "root")))
    try:
        with open(busybox_tar, "rb") as fh:
            image_id = engine.images.import_tar(fh, "-", "busybox", None, "", [])
        row, _ = engine.images.resolve(image_id)
        yield [engine.images.store.diff_dir(c) for c in engine.images.chains(row)]
    finally:
        engine.close()


def _remove_cgroup_parent(name: str) -> None:
    """runc delete removes a container's cgroups but not their parent (conmon-runc-notes §9)."""
    for controller in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", controller, name)
        if os.path.isdir(path):
            os.rmdir(path)


def run_container(workdir, layers, config, host_config=None, timeout=30):
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    cgroup_parent = "berth-test-" + os.path.basename(workdir)
    cdir = os.path.join(workdir, "containers", cid)
    os.makedirs(cdir)
    etc = {}
    for name, text in (("hostname", cid[:12] + "\n"), ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
                       ("resolv.conf", "nameserver 127.0.0.1\n")):
        path = os.path.join(cdir, name)
        with open(path, "w") as fh:
            fh.write(text)
        etc[f"/etc/{name}"] = path
    runc = Runc(RUNC, os.path.join(workdir, "runc"))
    rootfs = mount_rootfs(cdir, layers)
    try:
        spec = build_spec(rootfs=rootfs, container_id=cid, image_config={"Cmd": ["/bin/sh"]}, config=config,
                          host_config=host_config or {}, hostname=cid[:12], cgroups_path=f"/{cgroup_parent}/{cid}",
                          netns_path=None, etc_files=etc)
        with open(os.path.join(cdir, "config.json"), "w") as fh:
            json.dump(spec, fh)
        result = subprocess.run(runc.argv("run", "--bundle", cdir, cid), capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        return result, cid
    finally:
        runc.delete(cid, force=True)
        unmount_rootfs(cdir)
        _remove_cgroup_parent(cgroup_parent)


def test_busybox_runs_isolated_as_the_requested_user(workdir, image_layers):
    result, cid = run_container(workdir, image_layers, {
        "Cmd": ["sh", "-c", "echo hello; id; hostname; cat /etc/hostname; echo $GREETING; ls /proc/1/exe >/dev/null "
                "&& cat /proc/1/cmdline | tr '\\0' ' '; echo; ip link 2>/dev/null | grep -c '^[0-9]'"],
        "User": "nobody", "Env": ["GREETING=hi there"]})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "hello"
    assert lines[1].startswith("uid=65534(nobody) gid=65534(nogroup)")
    assert lines[2] == lines[3] == cid[:12]
    assert lines[4] == "hi there"
    assert lines[5].startswith("sh -c")        # pid 1 is our process: a pid namespace of its own
    assert lines[6] == "1"                     # only lo: a network namespace of its own


def test_exit_code_and_not_found(workdir, image_layers):
    result, _ = run_container(workdir, image_layers, {"Cmd": ["sh", "-c", "exit 3"]})
    assert result.returncode == 3
    result, _ = run_container(workdir, image_layers, {"Cmd": ["/no/such/binary"]})
    assert result.returncode != 0 and "no such file or directory" in result.stderr


def test_memory_limit_kills_a_hog(workdir, image_layers):
    result, _ = run_container(workdir, image_layers, {"Cmd": ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]},
                              host_config={"Memory": 32 << 20, "MemorySwap": 32 << 20})
    assert result.returncode == 137 and "survived" not in result.stdout


def test_parse_signal():
    assert parse_signal("TERM") == parse_signal("SIGTERM") == parse_signal("15") == parse_signal("sigterm") == 15
    assert parse_signal(9) == 9
    from app.errors import InvalidParameter
    for bad in ("NOPE", "0", "999", ""):
        with pytest.raises(InvalidParameter, match="Invalid signal"):
            parse_signal(bad)
