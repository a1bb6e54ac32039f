"""Container bundles for runtime tests: busybox from the image store, an overlay rootfs, a spec."""
from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager

from app.runtime.containers.spec import build_spec, write_etc_files
from app.runtime.host.overlay import mount_rootfs, unmount_rootfs


def remove_cgroup_parent(name: str) -> None:
    """runc delete removes a container's cgroups but not their parent (docs/conmon-runc-notes.md §9)."""
    for controller in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", controller, name)
        if os.path.isdir(path):
            os.rmdir(path)


@contextmanager
def bundle(workdir: str, layers: list[str], config: dict, host_config: dict | None = None):
    """Yield (container id, bundle dir) with the rootfs mounted; unmount and remove cgroups after."""
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    cgroup_parent = "berth-test-" + os.path.basename(workdir)
    cdir = os.path.join(workdir, "containers", cid)
    os.makedirs(cdir)
    etc = write_etc_files(cdir, cid[:12])
    rootfs = mount_rootfs(cdir, layers)
    try:
        spec = build_spec(rootfs=rootfs, container_id=cid, image_config={"Cmd": ["/bin/sh"]}, config=config,
                          host_config=host_config or {}, hostname=cid[:12], cgroups_path=f"/{cgroup_parent}/{cid}",
                          netns_path=None, etc_files=etc)
        with open(os.path.join(cdir, "config.json"), "w") as fh:
            json.dump(spec, fh)
        yield cid, cdir
    finally:
        unmount_rootfs(cdir)
        remove_cgroup_parent(cgroup_parent)
