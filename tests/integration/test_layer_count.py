"""An image of 120 layers (loaded from a generated docker-save archive) runs, diffs and exports under a
real daemon and runc: its overlay options are far past the one page mount(2) copies."""
import hashlib
import io
import json
import os
import tarfile
import threading
import time

from app.runtime.host.hostinfo import go_arch
from tests.integration.conftest import DOCKER_BIN, docker_cli
from tests.tarutil import tar_bytes

LAYERS = 120


def _deep_archive(path: str, busybox_tar: str, count: int, tag: str) -> None:
    """Docker's legacy save layout: busybox at the bottom, then count-1 layers that each add
    /layer-NNN and overwrite /which."""
    with open(busybox_tar, "rb") as fh:
        tars = [fh.read()]
    tars += [tar_bytes({f"layer-{i:03d}": f"{i}\n".encode(), "which": f"{i}\n".encode()}) for i in range(1, count)]
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    config = json.dumps({
        "architecture": go_arch(), "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(count)],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{i:03d}/layer.tar" for i in range(count)]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()
    with tarfile.open(path, "w") as out:
        for name, data in [(config_name, config), ("manifest.json", manifest)] + list(zip(names, tars)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def _berth_mounts(daemon) -> list[str]:
    with open("/proc/self/mounts") as fh:
        return [line for line in fh if daemon.data_root in line]


def test_a_120_layer_image_runs_diffs_and_exports(daemon, busybox_tar, workdir):
    archive = os.path.join(workdir, "deep.tar")
    _deep_archive(archive, busybox_tar, LAYERS, "deep:120")
    r = daemon.cli("load", "-i", archive, timeout=120, check=True)
    assert r.stdout.strip() == "Loaded image: deep:120"
    info = json.loads(daemon.cli("inspect", "deep:120", check=True).stdout)[0]
    assert len(info["RootFS"]["Layers"]) == LAYERS
    lowerdirs = info["GraphDriver"]["Data"]["LowerDir"].split(":") + [info["GraphDriver"]["Data"]["UpperDir"]]
    assert len("lowerdir=" + ":".join(lowerdirs)) > 4096       # the old option string could not mount this

    started = time.monotonic()
    r = daemon.cli("run", "--rm", "deep:120", "true", timeout=60)
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    print(f"run --rm of a {LAYERS}-layer image: {elapsed * 1000:.0f} ms")
    # /bin/busybox and /etc/passwd come from the bottom layer, /layer-119 and /which from the top one
    r = daemon.cli("run", "--rm", "deep:120", "sh", "-c",
                   "cat /etc/passwd /layer-001 /layer-119 /which | grep -c . ; cat /which; ls /bin/busybox",
                   timeout=60, check=True)
    assert r.stdout.split() == ["6", "119", "/bin/busybox"], r.stdout
    # two starts at once of the same image: each mounts the shared lowerdirs on its own
    results = []
    runs = [threading.Thread(target=lambda: results.append(
        daemon.cli("run", "--rm", "deep:120", "cat", "/which", timeout=60))) for _ in range(2)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert [(r.returncode, r.stdout) for r in results] == [(0, "119\n")] * 2, [r.stderr for r in results]
    if DOCKER_BIN:
        r = docker_cli(daemon, "run", "--rm", "deep:120", "cat", "/layer-119", timeout=60)
        assert (r.returncode, r.stdout) == (0, "119\n"), r.stderr

    # diff and export walk / mount the same 120 lowerdirs
    r = daemon.cli("run", "--name", "deepc", "deep:120", "sh", "-c", "echo x > /new; rm /layer-050",
                   timeout=60, check=True)
    diff = daemon.cli("diff", "deepc", check=True).stdout.splitlines()
    assert "A /new" in diff and "D /layer-050" in diff and not any("layer-119" in line for line in diff)
    out = os.path.join(workdir, "deepc.tar")
    daemon.cli("export", "-o", out, "deepc", timeout=60, check=True)
    with tarfile.open(out) as tar:
        names = {n.lstrip("./") for n in tar.getnames()}
        assert {"bin/busybox", "layer-001", "layer-119", "new"} <= names and "layer-050" not in names
        assert tar.extractfile("which").read() == b"119\n"
    assert _berth_mounts(daemon) == []                           # export of a stopped container unmounted
    daemon.cli("rm", "deepc", check=True)
    daemon.cli("rmi", "deep:120", check=True)
    assert os.listdir(os.path.join(daemon.data_root, "image", "layers")) == []
