"""Boot reconciliation against the fake runtime (tests/fakes.py): the logic of app/runtime/recovery.py
in milliseconds. tests/reliability/test_interrupted.py is the proof with real runc, conmon and SIGKILL."""
from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest

from tests.api.test_containers_api import V, _engine, _image_tar, actions, create, inspect
from tests.fakes import FakeHost


@pytest.fixture
def host():
    return FakeHost()


@pytest.fixture
def boot(tmp_path, host):
    """Open engines on one data root, one after the other (a daemon restart); yields (engine, api)."""
    from app import create_app
    root = str(tmp_path / "root")
    opened = []

    def start():
        if opened:
            opened[-1].close()
        eng = _engine(root, host)
        opened.append(eng)
        return eng, create_app(eng.config, eng).test_client()

    yield start
    opened[-1].close()


def _image(api):
    r = api.post(f"{V}/images/create?fromSrc=-&repo=busybox:latest&changes=" + quote('CMD ["sleep", "300"]'),
                 data=_image_tar())
    assert r.status_code == 200, r.data


def _cut_start(host, eng, cid: str, name: str) -> None:
    """What a SIGKILL right after `runc create` leaves: runc state, a `runc init` waiting for its
    release, a live conmon, and no `start` event."""
    bundle = eng.containers.bundle(cid)
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    with open(os.path.join(rootfs, "bin", "sleep"), "w"):
        pass
    os.chmod(os.path.join(rootfs, "bin", "sleep"), 0o755)
    with open(os.path.join(bundle, "config.json"), "w") as fh:
        json.dump({"process": {"args": ["sleep", "300"], "env": ["PATH=/bin"]}, "root": {"path": rootfs}}, fh)
    host.create(cid, bundle, name)


def test_a_start_cut_after_runc_create_is_rolled_back_at_boot(boot, host):
    eng, api = boot()
    _image(api)
    cid = create(api, "cut", Cmd=["sleep", "300"])
    _cut_start(host, eng, cid, "cut")
    eng, api = boot()
    assert not host.runc_knows(cid) and ("kill-conmon", cid) in host.calls
    assert inspect(api, cid)["State"]["Status"] == "created"
    assert api.post(f"{V}/containers/{cid}/start").status_code == 204     # no "already exists"
    assert inspect(api, cid)["State"]["Running"]
    assert api.delete(f"{V}/containers/{cid}?force=1").status_code == 204
    assert not os.path.exists(eng.containers.bundle(cid))


def test_a_removal_cut_before_destroy_is_finished_at_boot(boot, host):
    eng, api = boot()
    _image(api)
    cid = create(api, "half-gone")
    with open(os.path.join(eng.containers.dir, cid + ".removing"), "w"):
        pass                                # rm began: the marker is written before anything else
    eng, api = boot()
    assert api.get(f"{V}/containers/{cid}/json").status_code == 404
    assert actions(eng, cid)[-1] == "destroy"
    assert not os.path.exists(os.path.join(eng.containers.dir, cid + ".removing"))
    assert create(api, "half-gone")         # the name is free again


def test_autoremove_containers_that_are_not_running_go_at_boot(boot, host):
    eng, api = boot()
    _image(api)
    auto = create(api, "auto", HostConfig={"AutoRemove": True})
    kept = create(api, "kept")
    eng, api = boot()
    assert api.get(f"{V}/containers/{auto}/json").status_code == 404
    assert inspect(api, kept)["State"]["Status"] == "created"


def test_leftovers_of_unknown_ids_are_removed_at_boot(boot, host):
    eng, api = boot()
    stray = "e" * 64
    c = eng.containers
    paths = [os.path.join(c.dir, stray), os.path.join(c.monitor.exits_dir, stray),
             os.path.join(c.monitor.sockets_dir, stray)]
    os.makedirs(os.path.join(paths[0], "upper"))
    for path in paths[1:]:
        with open(path, "w"):
            pass
    eng, api = boot()
    assert not any(os.path.lexists(p) for p in paths)
