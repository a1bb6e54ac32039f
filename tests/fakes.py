"""A fake runtime for fast tests of the container lifecycle: no runc, no conmon, no mounts.

The engine takes its host adapters through its constructor (app/runtime/host/__init__.py, Host).
`FakeHost.host(data_root, cgroup_parent)` builds one of fakes, handed to `Engine(config, host=…)`, so
nothing is patched and the real lifecycle code (events, projections,
the inotify exit watcher, waits, AutoRemove, reconcile) runs against a pretend machine in
milliseconds. This is coverage for logic and error paths only: the proof that a feature works with
runc and conmon stays in tests/integration.

The pretend machine:
- `FakeRunc` subclasses the real `Runc` and replaces only `_run`, i.e. it emulates the `runc` command
  line (state, list, start, kill, pause, resume, ps, delete) with runc's exit statuses and logrus
  error lines, so the real wrapper's parsing runs too.
- `FakeMonitor` subclasses the real `Monitor` and replaces what spawns, kills or connects to conmon
  (`create`, `conmon_pid`, `kill`, `connect_attach`, `resize`). `exit_code`, `oom_killed`, `files`, `cleanup`
  and `start` are the real ones (there is no exec.fifo, so the real `start` falls back to `runc start`).
  An exit is simulated as conmon reports it: `<exits_dir>/<id>.tmp` is written and renamed to `<id>`
  (plus `userdata/oom` for an OOM kill), so the real inotify watcher and `wait` see it.
- runc's state is `<runc root>/<id>/state.json` (no cgroup paths), so the real `Runc.known` and
  `Runc.forget_stopped` work on it; a container whose state dir is gone is unknown to the fake runc.
- `FakeHost.mount_rootfs` makes `<bundle>/rootfs` a plain directory holding a copy of the image's
  layers (so user and executable lookups read the image's files); `FakeHost.unmount_rootfs` only
  records. `FakeHost.mounted` is the set of "mounted" bundles.

What a container does is scripted by its command (its `process.args` in config.json), like a tiny
busybox. The executable is looked up in the rootfs first (PATH from the spec's env), so a command the
image lacks fails at create with runc's `executable file not found in $PATH` (127), a path that does
not exist with `no such file or directory` (127) and a directory or non-executable file with
`permission denied` (126). Then, by the executable's basename:

    exit N            exits with N right after start     (also `sh -c "exit N"`)
    true / false      exit 0 / 1 right after start
    echo WORDS...     writes WORDS to its log (k8s-file, as conmon does) and exits 0
    oom               exits 137 with conmon's OOM marker
    ignore SIG...     runs until SIGKILL or a signal not listed (e.g. `ignore TERM`: a PID 1 with
                      no handler)
    anything else     runs (e.g. `sleep 300`) until a signal: it dies with 128+signal

`FakeHost.script(name_or_id, ...)` overrides this per container (exit code, ignored signals, traps,
OOM, create/start errors, a create that hangs until an Event is set or its conmon is killed), and
`FakeHost.exit(cid, code)` makes a running container exit at a moment the test chooses.
`FakeHost.fail["mount" | "create"] = exc` makes that step raise `exc` once (a MountError, an OSError
such as ENOSPC, anything).
"""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal as signals
import subprocess
import threading
import time
from dataclasses import dataclass, field

from app.runtime.host import Host
from app.runtime.host.cgroups import Cgroups
from app.runtime.host.conmon import Monitor, _runtime_message
from app.runtime.host.overlay import changes as overlay_changes
from app.runtime.host.runc import Runc, RuncError, _message, parse_signal

FIRST_PID = 10_000_000          # above any possible pid_max (2^22): never a real process
DEFAULT_IGNORED = {signals.SIGCHLD, signals.SIGURG, signals.SIGWINCH, signals.SIGCONT}


def _signal_numbers(names) -> set[int]:
    return {parse_signal(n) for n in names}


@dataclass
class Script:
    """What one container does; a script given to FakeHost.script replaces what its command says."""
    exit: int | None = None                 # exit with this code right after start
    ignore: set[int] = field(default_factory=set)   # signals it ignores (SIGKILL never is)
    traps: dict[int, int] = field(default_factory=dict)  # signal → exit code it exits with
    oom: bool = False                       # exit 137 with conmon's OOM marker after start
    output: list[tuple[str, bytes]] = field(default_factory=list)   # (stream, line) written at start
    create_error: str | None = None         # runc create fails: "unable to start container process: <this>"
    start_error: str | None = None          # runc start fails with this message
    hang: threading.Event | None = None     # runc create blocks until this is set (or conmon is killed)


@dataclass
class FakeProcess:
    cid: str
    name: str
    pid: int
    args: list[str]
    bundle: str
    script: Script
    status: str = "created"                 # runc's: created, running, paused, stopped
    signals: list[int] = field(default_factory=list)     # every signal runc delivered, in order
    pending: list[int] = field(default_factory=list)     # signals queued while frozen
    conmon_alive: bool = True


class FakeHost:
    """The pretend machine shared by every `Runc`/`Monitor` an engine builds, and by the next engine
    on the same data root (so a daemon restart can be simulated)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.processes: dict[str, FakeProcess] = {}
        self.scripts: dict[str, Script] = {}     # by container name or id
        self.calls: list[tuple] = []             # every runc/conmon command: ("kill", cid, 15), …
        self.mounted: set[str] = set()           # bundles whose rootfs is "mounted"
        self.resizes: list[tuple[str, int, int]] = []
        self.updates: list[tuple[str, dict]] = []    # `runc update`: (cid, the resources JSON)
        self.update_error: str | None = None         # set: `runc update` fails with this message
        self.exits_dir: str | None = None
        self.runc_root: str | None = None
        self._pids = itertools.count(FIRST_PID)
        self.fail: dict[str, BaseException] = {}  # step ("mount", "create") -> what it raises, once
        self._conmon_killed: set[str] = set()     # a hanging create ends when its conmon is killed

    # ------------------------------------------------------------------ wiring

    def host(self, data_root: str, cgroup_parent: str) -> Host:
        """The Host to hand to Engine(config, host=…): fake runc, conmon and overlay; the real
        cgroups adapter under a parent nobody creates, and the real reaper (it finds nothing)."""
        runc = self.make_runc("runc", os.path.join(data_root, "runc"))
        monitor = self.make_monitor("conmon", runc, os.path.join(data_root, "exits"), os.path.join(data_root, "s"))
        return Host(runc=runc, conmon=monitor, overlay=_FakeOverlay(self), cgroups=Cgroups(cgroup_parent),
                    volmounts=FakeVolumeMounts(self))

    def make_runc(self, binary: str, root: str) -> "FakeRunc":
        return FakeRunc(self, binary, root)

    def make_monitor(self, conmon: str, runc, exits_dir: str, sockets_dir: str) -> "FakeMonitor":
        return FakeMonitor(self, conmon, runc, exits_dir, sockets_dir)

    def mount_rootfs(self, container_dir: str, lowerdirs: list[str]) -> str:
        if "mount" in self.fail:
            raise self.fail.pop("mount")
        if not lowerdirs:
            raise ValueError("an overlay needs at least one lower layer")
        upper, work, rootfs = (os.path.join(container_dir, d) for d in ("upper", "work", "rootfs"))
        for path in (upper, work, rootfs):
            os.makedirs(path, mode=0o755, exist_ok=True)
        with self.lock:
            if container_dir not in self.mounted:
                for lower in lowerdirs:                  # bottom layer first, as overlay stacks them
                    shutil.copytree(lower, rootfs, symlinks=True, dirs_exist_ok=True)
                self.mounted.add(container_dir)
        return rootfs

    def unmount_rootfs(self, container_dir: str) -> None:
        with self.lock:
            self.mounted.discard(container_dir)

    def is_mounted(self, path: str) -> bool:
        with self.lock:
            return os.path.dirname(path.rstrip("/")) in self.mounted

    # ------------------------------------------------------------------ scripting

    def script(self, key: str, *, exit: int | None = None, ignore=(), traps: dict | None = None,
               oom: bool = False, create_error: str | None = None, start_error: str | None = None,
               hang: threading.Event | None = None) -> Script:
        """Script the container named (or with ID) `key`; signals by name or number."""
        s = Script(exit=exit, ignore=_signal_numbers(ignore),
                   traps={parse_signal(k): v for k, v in (traps or {}).items()}, oom=oom,
                   create_error=create_error, start_error=start_error, hang=hang)
        self.scripts[key.lstrip("/")] = s
        return s

    def process(self, cid: str) -> FakeProcess:
        with self.lock:
            return self.processes[cid]

    def exit(self, cid: str, code: int, oom: bool = False) -> None:
        """The container's process ends now: conmon records the code (and the OOM marker)."""
        with self.lock:
            proc = self.processes[cid]
            if proc.status == "stopped":
                return
            proc.status = "stopped"
            exits_dir = self.exits_dir
        if oom:
            userdata = os.path.join(proc.bundle, "userdata")
            os.makedirs(userdata, exist_ok=True)
            with open(os.path.join(userdata, "oom"), "w"):
                pass
        tmp = os.path.join(exits_dir, cid + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(str(code))
        os.rename(tmp, os.path.join(exits_dir, cid))
        with self.lock:
            proc.conmon_alive = False           # as the real one: conmon exits after writing the file

    def vanish(self, cid: str) -> None:
        """conmon and the container are gone without an exit file (e.g. killed with the machine)."""
        with self.lock:
            proc = self.processes[cid]
            proc.status = "stopped"
            proc.conmon_alive = False

    # ------------------------------------------------------------------ what the commands do

    def _script_for(self, cid: str, name: str, args: list[str]) -> Script:
        explicit = self.scripts.get(name) or self.scripts.get(cid)
        if explicit is not None:
            return explicit
        prog, rest = os.path.basename(args[0]), args[1:]
        if prog == "sh" and len(rest) == 2 and rest[0] == "-c":
            match = re.fullmatch(r"\s*exit\s+(\d+)\s*", rest[1])
            if match:
                return Script(exit=int(match.group(1)))
        if prog == "exit":
            return Script(exit=int(rest[0]) if rest else 0)
        if prog in ("true", "false"):
            return Script(exit=0 if prog == "true" else 1)
        if prog == "echo":
            return Script(exit=0, output=[("stdout", " ".join(rest).encode())])
        if prog == "oom":
            return Script(oom=True)
        if prog == "ignore":
            return Script(ignore=_signal_numbers(rest))
        return Script()

    def _lookup(self, rootfs: str, env: list[str], arg0: str) -> str | None:
        """runc's exec error for a command the rootfs cannot run, else None."""
        if "/" in arg0:
            path = os.path.join(rootfs, arg0.lstrip("/"))
            if not os.path.lexists(path):
                return f'exec: "{arg0}": stat {arg0}: no such file or directory'
            if os.path.isdir(path) or not os.access(path, os.X_OK):
                return f'exec: "{arg0}": permission denied'
            return None
        search = next((e[5:] for e in env if e.startswith("PATH=")), "")
        for directory in search.split(":"):
            path = os.path.join(rootfs, directory.lstrip("/"), arg0)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return None
        return f'exec: "{arg0}": executable file not found in $PATH'

    def create(self, cid: str, bundle: str, name: str) -> int:
        with open(os.path.join(bundle, "config.json")) as fh:
            spec = json.load(fh)
        if "create" in self.fail:
            raise self.fail.pop("create")
        script = self.scripts.get(name) or self.scripts.get(cid)
        if script is not None and script.hang is not None:    # outside the lock: other containers go on
            self._conmon_killed.discard(cid)
            self.calls.append(("create-hang", cid))
            while not script.hang.wait(0.01):
                if cid in self._conmon_killed:
                    raise RuncError("conmon failed to create container: killed")
        args = spec["process"]["args"]
        with self.lock:
            self.calls.append(("create", cid))
            if self.runc_knows(cid):
                raise RuncError(_runtime_message(f"runc create failed: container with id exists: {cid}"))
            script = self._script_for(cid, name, args)
            problem = script.create_error or self._lookup(spec["root"]["path"], spec["process"]["env"], args[0])
            if problem:
                raise RuncError(_runtime_message(f"runc create failed: unable to start container process: "
                                                 f"{problem}"))
            proc = FakeProcess(cid, name, next(self._pids), list(args), bundle, script)
            self.processes[cid] = proc
            state_dir = os.path.join(self.runc_root, cid)     # what Runc.known/forget_stopped look at
            os.makedirs(state_dir, exist_ok=True)
            with open(os.path.join(state_dir, "state.json"), "w") as fh:
                json.dump({"id": cid, "init_process_pid": proc.pid, "cgroup_paths": {}}, fh)
            return proc.pid

    def runc_knows(self, cid: str) -> bool:
        """runc has state for it (`runc delete`, or Runc.forget_stopped, removes that)."""
        return os.path.isdir(os.path.join(self.runc_root, cid))

    def _known(self, cid: str) -> FakeProcess | None:
        """The process runc can still act on: none once its state dir is gone."""
        proc = self.processes.get(cid)
        if proc is not None and not self.runc_knows(cid):
            if proc.status != "stopped":         # its state vanished under it: as good as dead
                proc.status, proc.conmon_alive = "stopped", False
            return None
        return proc

    def start(self, cid: str) -> None:
        with self.lock:
            proc = self._known(cid)
            if proc is None or proc.status == "stopped":
                raise _RuncFailure("container does not exist" if proc is None
                                   else "cannot start a container that has stopped")
            if proc.status != "created":
                raise _RuncFailure("cannot start an already running container")
            if proc.script.start_error:
                raise _RuncFailure(proc.script.start_error)
            proc.status = "running"
            script = proc.script
        if script.output:
            log = os.path.join(proc.bundle, "userdata", "ctr.log")
            with open(log, "ab") as fh:
                for stream, line in script.output:
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000001+00:00"
                    fh.write(f"{stamp} {stream} F ".encode() + line + b"\n")
        if script.oom:
            self.exit(cid, 137, oom=True)
        elif script.exit is not None:
            self.exit(cid, script.exit)

    def kill(self, cid: str, number: int) -> None:
        with self.lock:
            proc = self._known(cid)
            if proc is None:
                raise _RuncFailure("container does not exist")
            if proc.status == "stopped":
                raise _RuncFailure("container not running")
            proc.signals.append(number)
            if proc.status == "paused" and number != signals.SIGKILL:
                proc.pending.append(number)      # frozen: delivered when thawed
                return
            code = self._outcome(proc, number)
        if code is not None:
            self.exit(cid, code)

    def _outcome(self, proc: FakeProcess, number: int) -> int | None:
        if number == signals.SIGKILL:
            return 137
        if number in proc.script.traps:
            return proc.script.traps[number]
        if number in proc.script.ignore or number in DEFAULT_IGNORED:
            return None
        return 128 + number

    def pause(self, cid: str) -> None:
        with self.lock:
            proc = self._live(cid)
            if proc.status != "running":
                raise _RuncFailure("container not running")
            proc.status = "paused"

    def resume(self, cid: str) -> None:
        with self.lock:
            proc = self._live(cid)
            if proc.status != "paused":
                raise _RuncFailure("container not paused")
            proc.status = "running"
            pending, proc.pending = proc.pending, []
            codes = [c for c in (self._outcome(proc, n) for n in pending) if c is not None]
        if codes:
            self.exit(cid, codes[0])

    def delete(self, cid: str, force: bool) -> None:
        with self.lock:
            proc = self._known(cid)
            if proc is None:
                shutil.rmtree(os.path.join(self.runc_root, cid), ignore_errors=True)
                raise _RuncFailure("container does not exist")
            if proc.status not in ("stopped", "created") and not force:
                raise _RuncFailure(f"cannot delete container {cid} that is not stopped: {proc.status}")
            live = proc.status != "stopped"
        if live:
            self.exit(cid, 137)                   # --force: runc SIGKILLs it, conmon records that
        with self.lock:                           # the process stays in `processes`, for tests to read
            shutil.rmtree(os.path.join(self.runc_root, cid), ignore_errors=True)

    def _live(self, cid: str) -> FakeProcess:
        proc = self._known(cid)
        if proc is None:
            raise _RuncFailure("container does not exist")
        if proc.status == "stopped":
            raise _RuncFailure("container not running")
        return proc


class _RuncFailure(Exception):
    """A `runc` invocation that exits 1 with this message on stderr."""


def _logrus(message: str) -> str:
    """runc's stderr line for an error (logrus text format, quotes escaped)."""
    escaped = message.replace('"', '\\"')
    return f'time="{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}" level=error msg="{escaped}"\n'


class FakeRunc(Runc):
    """The real wrapper over an emulated `runc --root ROOT` command line."""

    def __init__(self, host: FakeHost, binary: str, root: str):
        super().__init__(binary, root)
        self.host = host
        host.runc_root = root

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = self.argv(*args)
        command, rest, flags = args[0], [], set()
        words = iter(args[1:])
        for word in words:
            if word == "--format":
                next(words, None)
            elif word.startswith("--"):
                flags.add(word)
            else:
                rest.append(word)
        self.host.calls.append((command, *rest))
        stdout = ""
        try:
            if command == "state":
                stdout = json.dumps(self._state(rest[0]))
            elif command == "list":
                with self.host.lock:
                    ids = sorted(c for c in self.host.processes if self.host.runc_knows(c))
                stdout = json.dumps([self._state(cid) for cid in ids] or None)
            elif command == "start":
                self.host.start(rest[0])
            elif command == "kill":
                self.host.kill(rest[0], parse_signal(rest[1]) if len(rest) > 1 else signals.SIGTERM)
            elif command == "pause":
                self.host.pause(rest[0])
            elif command == "resume":
                self.host.resume(rest[0])
            elif command == "ps":
                with self.host.lock:
                    stdout = json.dumps([self.host._live(rest[0]).pid])
            elif command == "delete":
                self.host.delete(rest[0], force="--force" in flags)
            elif command == "update":           # update --resources FILE ID
                with open(rest[0]) as fh:
                    resources = json.load(fh)
                with self.host.lock:
                    self.host._live(rest[1])
                    if self.host.update_error:
                        raise _RuncFailure(self.host.update_error)
                    self.host.updates.append((rest[1], resources))
            else:
                raise _RuncFailure(f"fake runc: no command {command!r}")
        except _RuncFailure as failure:
            result = subprocess.CompletedProcess(argv, 1, "", _logrus(str(failure)))
            if check:       # what the real _run does with a failed runc
                raise RuncError(_message(result.stderr) or f"runc {command} failed with 1")
            return result
        return subprocess.CompletedProcess(argv, 0, stdout, "")

    def _state(self, cid: str) -> dict:
        with self.host.lock:
            proc = self.host._known(cid)
            if proc is None:
                raise _RuncFailure("container does not exist")
            return {"ociVersion": "1.0.2", "id": cid, "pid": 0 if proc.status == "stopped" else proc.pid,
                    "status": proc.status, "bundle": proc.bundle, "rootfs": os.path.join(proc.bundle, "rootfs")}


class FakeMonitor(Monitor):
    """The real Monitor's files and exit-file reading; conmon itself replaced by the FakeHost."""

    def __init__(self, host: FakeHost, conmon: str, runc: FakeRunc, exits_dir: str, sockets_dir: str):
        super().__init__(conmon, runc, exits_dir, sockets_dir)
        self.host = host
        host.exits_dir = exits_dir

    def create(self, container_id: str, bundle: str, name: str, stdin: bool = False, stdin_once: bool = False,
               tty: bool = False, log_size_max: int | None = None, keep_log: bool = True) -> int:
        f = self.files(container_id, bundle)
        os.makedirs(f.userdata, mode=0o700, exist_ok=True)
        try:
            pid = self.host.create(container_id, bundle, name)
        except RuncError:
            self.cleanup(container_id, bundle)
            raise
        open(f.log, "ab").close()             # conmon creates the log at once
        return pid

    def conmon_pid(self, container_id: str, bundle: str) -> int | None:
        with self.host.lock:
            proc = self.host.processes.get(container_id)
            return proc.pid + 1 if proc is not None and proc.conmon_alive else None

    def kill(self, container_id: str, bundle: str) -> None:
        """SIGKILL conmon (recovery and rm -f do this to a conmon a cut start left behind)."""
        with self.host.lock:
            self.host.calls.append(("kill-conmon", container_id))
            self.host._conmon_killed.add(container_id)
            proc = self.host.processes.get(container_id)
            if proc is not None:
                proc.conmon_alive = False

    def connect_attach(self, container_id: str, bundle: str):
        raise ConnectionRefusedError(111, "fake conmon: no attach socket")

    def resize(self, container_id: str, bundle: str, height: int, width: int) -> None:
        with self.host.lock:
            proc = self.host.processes.get(container_id)
            if proc is None or proc.status == "stopped":
                raise FileNotFoundError(2, "fake conmon: no control fifo")
            self.host.resizes.append((container_id, height, width))


class _FakeOverlay:
    """The overlay adapter of the pretend machine (app/runtime/host/overlay.py Overlay's shape)."""

    def __init__(self, fake: FakeHost):
        self.mount = fake.mount_rootfs
        self.unmount = fake.unmount_rootfs
        self.is_mounted = fake.is_mounted
        self.changes = overlay_changes       # plain directories: the real walk works on them


class FakeVolumeMounts:
    """The local volume driver's mounts on the pretend machine: recorded, never made. A device of
    "refuse" fails as the kernel would refuse an option."""

    def __init__(self, fake: FakeHost):
        self.fake = fake
        self.active: set[str] = set()

    def mount(self, device: str, target: str, fstype: str, options: str) -> None:
        from app.runtime.host.volmount import VolumeMountError
        if device == "refuse" or "bogus" in options:
            raise VolumeMountError(22, f"failed to mount local volume: mount {device}:{target}, data: {options}: "
                                       "invalid argument")
        with self.fake.lock:
            self.active.add(target)

    def unmount(self, target: str) -> None:
        with self.fake.lock:
            self.active.discard(target)

    def is_mounted(self, target: str) -> bool:
        with self.fake.lock:
            return target in self.active
