"""The only code that touches the host: runc, conmon, overlayfs, cgroups, processes, seccomp, safe
archive extraction, netlink (pyroute2) and iptables.

`Host` bundles the adapters the engine passes to the services. `real_host` builds the real ones for a
data root; tests build a Host of fakes (tests/fakes.py) and hand it to the Engine, so nothing is patched.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.runtime.host.cgroups import Cgroups
    from app.runtime.host.conmon import Monitor
    from app.runtime.host.execmon import ExecMonitor
    from app.runtime.host.overlay import Overlay
    from app.runtime.host.processes import Reaper
    from app.runtime.host.runc import Runc
    from app.runtime.host.volmount import VolumeMounts
    from app.runtime.host.iptables import Iptables
    from app.runtime.host.netlink import Netlink


@dataclass
class Host:
    runc: "Runc"
    conmon: "Monitor"
    overlay: "Overlay"
    cgroups: "Cgroups"
    reaper: "Reaper" = field(default=None)
    execs: "ExecMonitor" = field(default=None)     # exec sessions under conmon --exec
    volmounts: "VolumeMounts" = field(default=None)  # the local volume driver's mounts
    netlink: "Netlink" = field(default=None)       # bridges and veths (None: containers get loopback only)
    iptables: "Iptables" = field(default=None)     # berth's chains (None: nothing is written)

    def __post_init__(self):
        if self.reaper is None:
            from app.runtime.host.processes import Reaper
            self.reaper = Reaper()
        if self.execs is None:
            from app.runtime.host.execmon import ExecMonitor
            self.execs = ExecMonitor(self.conmon.conmon, self.runc)
        if self.volmounts is None:
            from app.runtime.host.volmount import VolumeMounts
            self.volmounts = VolumeMounts()


def real_host(data_root: str, runtime: str = "runc", conmon: str | None = None,
              cgroup_parent: str = "berth") -> Host:
    from app.runtime.host.cgroups import Cgroups
    from app.runtime.host.conmon import Monitor
    from app.runtime.host.overlay import Overlay
    from app.runtime.host.runc import Runc
    from app.runtime.host.iptables import Iptables
    from app.runtime.host.netlink import Netlink
    runc = Runc(shutil.which(runtime) or runtime, os.path.join(data_root, "runc"))
    monitor = Monitor(conmon or shutil.which("conmon") or "conmon", runc,
                      os.path.join(data_root, "exits"), os.path.join(data_root, "s"))
    return Host(runc=runc, conmon=monitor, overlay=Overlay(), cgroups=Cgroups(cgroup_parent),
                netlink=Netlink(), iptables=Iptables())
