"""Container lifecycle: create, start, stop, kill, wait, remove, and exits observed from conmon.

The containers projection is the state; every change is an appended event. Runtime facts (an exit
file appeared, conmon vanished while the daemon was down) enter as events too, from `reconcile`,
which also cleans up what a start or rm cut short left on the host (app/runtime/recovery.py).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import random
import re
import secrets
import select
import shutil
import subprocess
import threading
import time

from app.common.filters import labels_match
from app.common.fsutil import dir_size
from app.common.reference import ReferenceError, normalize_name
from app.errors import Conflict, InvalidParameter, NotFound, NotModified
from app.events.model import NewEvent
from app.runtime import faults, recovery
from app.runtime.attach import AttachHub, Subscription
from app.runtime.createkeys import HOST_CONFIG, refuse_unapplied
from app.runtime.monitor import Monitor
from app.runtime.ocispec import (build_spec, clamped_rlimits, command_of, extra_hosts, resources_from,
                                 validate_console_size, validate_dns, validate_process_settings, write_etc_files)
from app.runtime.overlay import mount_rootfs, unmount_rootfs
from app.runtime.runc import Runc, RuncError, parse_signal
from app.runtime.security import pid_mode, validate_host_config

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_ADJECTIVES = ["brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "quiet", "sharp",
               "tender", "vivid", "witty", "zen"]
_NAMES = ["hopper", "lovelace", "turing", "curie", "knuth", "ritchie", "thompson", "liskov", "hamilton",
          "shannon", "dijkstra", "goldberg", "perlman", "wozniak", "babbage"]
WATCH_SECONDS = 0.05
# conmon keeps the log (k8s-file on disk); /logs serves it the way Docker's json-file driver does, and
# "local" the same way through the API. "none" keeps nothing (conmon `-l none`); /logs then says so.
LOG_DRIVERS = ("json-file", "local", "none")
WATCH_FALLBACK_SECONDS = 0.5


class ExitDirWatch:
    """inotify on conmon's exit directory: conmon writes `<id>.tmp` and renames it to `<id>`."""

    IN_MOVED_TO, IN_CLOSE_WRITE, IN_NONBLOCK, IN_CLOEXEC = 0x80, 0x8, 0o4000, 0o2000000

    def __init__(self, path: str):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._wake_r, self._wake_w = os.pipe()   # close() wakes a waiting watcher at once
        self.fd = libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
        if self.fd >= 0 and libc.inotify_add_watch(self.fd, path.encode(), self.IN_MOVED_TO | self.IN_CLOSE_WRITE) < 0:
            os.close(self.fd)
            self.fd = -1

    def wait(self, timeout: float) -> None:
        fds = [self._wake_r] + ([self.fd] if self.fd >= 0 else [])
        ready, _, _ = select.select(fds, [], [], timeout if self.fd >= 0 else WATCH_SECONDS)
        if self.fd in ready:
            try:
                os.read(self.fd, 65536)   # drain; which file changed does not matter
            except BlockingIOError:
                pass

    def wake(self) -> None:
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        for fd in (self.fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)


# Mount points runc creates in the rootfs (Docker keeps them in an "-init" layer under the container's
# own layer, so `docker diff` never lists them).
RUNTIME_MOUNT_POINTS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc", "/sys", "/dev", "/.dockerenv",
                        "/etc/mtab")


def _runtime_made(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in RUNTIME_MOUNT_POINTS)


def _exit_code_for(err: Exception) -> int:
    """Docker's exit code for a start the runtime refused: 127 not found, 126 not executable."""
    text = str(err)
    if any(s in text for s in ("executable file not found", "no such file or directory", "not a directory")):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 128


def _validate_config(config: dict) -> None:
    """moby's validateContainerConfig: checked at create, before the image is looked up."""
    workdir = config.get("WorkingDir") or ""
    if workdir:
        if not workdir.startswith("/"):
            raise InvalidParameter(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
        config["WorkingDir"] = os.path.normpath(workdir).replace("//", "/", 1)
    if config.get("StopSignal"):
        parse_signal(config["StopSignal"])
    for entry in config.get("Env") or []:
        if not isinstance(entry, str) or not entry.partition("=")[0]:
            raise InvalidParameter(f"invalid environment variable: {entry}")


class _AttachWaiter:
    """An attach that arrived before the container started (`docker run` attaches, then starts)."""

    def __init__(self):
        self.ready = threading.Event()
        self.conn = None        # conmon attach connection, or None when the container went away


class Containers:
    def __init__(self, engine, runtime: str, conmon: str | None):
        self.engine = engine
        root = engine.data_root
        self.dir = os.path.join(root, "containers")
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        self.runc = Runc(shutil.which(runtime) or runtime, os.path.join(root, "runc"))
        self.monitor = Monitor(conmon or shutil.which("conmon") or "conmon", self.runc,
                               os.path.join(root, "exits"), os.path.join(root, "s"))
        self.cgroup_parent = engine.config.cgroup_parent
        self.lock = threading.RLock()
        self.exited = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._attach_waiters: dict[str, list[_AttachWaiter]] = {}
        self._hubs: dict[str, AttachHub] = {}     # running containers' single conmon attach connections
        self._closing = threading.Event()
        self.closing = self._closing          # read by streaming handlers (attach with logs) to end
        self._unreaped: set[int] = set()     # exited containers' conmon pids not yet waited for
        # containers whose start rm -f cancelled: their killed runc init may still turn into a zombie
        # reparented to this subreaper (cid -> until when to look for it; normal removals are not here)
        self._removed_recently: dict[str, float] = {}
        self._starting: dict[str, recovery.StartAttempt] = {}    # guarded by its own lock: the start holds self.lock
        self._starting_lock = threading.Lock()
        self.reconcile()
        self._notify = ExitDirWatch(self.monitor.exits_dir)
        self._watcher = threading.Thread(target=self._watch, name="exit-watcher", daemon=True)
        self._watcher.start()

    # ------------------------------------------------------------------------------ lookups

    def _q(self, sql, params=()):
        return self.engine.store.query(sql, params)

    def resolve(self, ref: str) -> dict:
        """Full ID, name (with or without "/"), or a unique ID prefix; Docker's NotFound otherwise."""
        name = ref.lstrip("/")
        rows = self._q("SELECT * FROM containers WHERE id=? OR name=?", (ref, name))
        if not rows and ref and re.fullmatch(r"[0-9a-f]+", ref):
            rows = self._q("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        if not rows:
            raise NotFound(f"No such container: {ref}")
        return dict(rows[0])

    def is_running(self, cid: str) -> bool:
        rows = self._q("SELECT state FROM containers WHERE id=?", (cid,))
        return bool(rows) and rows[0][0] in ("running", "paused")

    def bundle(self, cid: str) -> str:
        return os.path.join(self.dir, cid)

    # ------------------------------------------------------------------------------ create

    def _name(self, requested: str | None) -> str:
        if requested:
            if not NAME_RE.match(requested):
                raise InvalidParameter(f"Invalid container name ({requested}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                                       "allowed")
            name = requested.lstrip("/")
            taken = self._q("SELECT id FROM containers WHERE name=?", (name,))
            if taken:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                               f'"{taken[0][0]}". You have to remove (or rename) that container to be able to '
                               "reuse that name.")
            return name
        for _ in range(100):
            name = f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}"
            if not self._q("SELECT 1 FROM containers WHERE name=?", (name,)):
                return name
        return f"{random.choice(_ADJECTIVES)}_{secrets.token_hex(4)}"

    def create(self, request: dict, name: str | None) -> str:
        """`request` is a decoded create body (app/api/schemas/container_create.py): Config's keys at the
        top, HostConfig and NetworkingConfig nested, every value of its Go type."""
        host_config = dict(request.get("HostConfig") or {})
        networking_config = dict(request.get("NetworkingConfig") or {})
        config = {k: v for k, v in request.items() if k not in ("HostConfig", "NetworkingConfig")}
        if any(k not in HOST_CONFIG for k in host_config):
            raise InvalidParameter("invalid HostConfig: " + ", ".join(sorted(set(host_config) - set(HOST_CONFIG))))
        refuse_unapplied(config, host_config, networking_config)    # never accepted and then ignored
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("Config cannot be empty in order to create a container")
        _validate_config(config)
        try:
            row, _ = self.engine.images.resolve(image_ref)
        except NotFound:
            try:                                    # Docker names the normalized reference
                shown = normalize_name(image_ref)
            except ReferenceError:
                shown = image_ref
            raise NotFound(f"No such image: {shown}") from None
        image_cfg = (self.engine.images.config(row).get("config") or {})
        resources_from(host_config)                 # limits are checked now, not at start
        clamped_rlimits(host_config.get("Ulimits"))
        validate_console_size(host_config)
        validate_process_settings(host_config)
        validate_dns(host_config)
        extra_hosts(host_config)
        validate_host_config(host_config)           # capabilities, --security-opt, PidMode, --device
        kind, target = pid_mode(host_config)
        if kind == "container":                     # kept by ID, as moby does: a rename does not break it
            try:
                host_config["PidMode"] = "container:" + self.resolve(target)["id"]
            except NotFound:
                pass                                # moby leaves it to start to fail
        log_config = host_config.get("LogConfig") or {}
        driver = log_config.get("Type") or "json-file"
        if driver not in LOG_DRIVERS:
            raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
        host_config["LogConfig"] = {"Type": driver, "Config": log_config.get("Config") or {}}
        command = command_of(image_cfg, config)
        mode = host_config.get("NetworkMode") or "default"
        if mode not in ("default", "bridge", "none", "host"):
            raise NotFound(f"network {mode} not found")
        with self.lock:
            cname = self._name(name)
            cid = secrets.token_hex(32)
            image_labels = {k: v for k, v in (image_cfg.get("Labels") or {}).items()
                            if isinstance(k, str) and isinstance(v, str)}    # an image config is untrusted
            labels = {**image_labels, **(config.pop("Labels", None) or {})}
            # Labels are stored once, in this payload; /events adds them to every event of the container
            # when it sends it (app/events/labels.py), as Docker's events carry them.
            attrs = {"image": image_ref, "name": cname}
            self.engine.store.append([NewEvent("container", "create", cid, attrs, payload={
                "config": config, "host_config": host_config, "image_id": row["id"], "labels": labels,
                "command": command})])
        return cid

    # ------------------------------------------------------------------------------ start

    def start(self, ref: str) -> None:
        with self.lock:
            row = self.resolve(ref)
            if row["state"] == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if row["state"] in ("running", "restarting"):
                raise NotModified("container already started")
            attempt = recovery.StartAttempt()
            with self._starting_lock:
                self._starting[row["id"]] = attempt
            try:
                self._prepare_and_run(row, attempt)
            except (RuncError, InvalidParameter) as err:
                self._release_attach_waiters(row["id"])    # as moby cancels attaches on a failed start
                if attempt.cancelled.is_set():             # rm -f ended it; the removal follows
                    raise Conflict(f"container {row['id']} was removed while it was starting") from err
                code = _exit_code_for(err)
                self.engine.store.append([NewEvent("container", "start-failed", row["id"], self._attrs(row),
                                                   payload={"error": str(err), "exit_code": code})])
                if json.loads(row["host_config"]).get("AutoRemove"):
                    self.remove(row["id"], force=True)     # as Docker: a --rm container that cannot start goes
                if isinstance(err, RuncError) and code in (126, 127):
                    raise InvalidParameter(str(err)) from err
                raise
            finally:
                with self._starting_lock:
                    self._starting.pop(row["id"], None)

    def _cancel_start(self, cid: str) -> bool:
        """`rm -f` of a container whose start is in flight (it may hang in runc or conmon)."""
        with self._starting_lock:
            attempt = self._starting.get(cid)
        if attempt is None or attempt.thread is threading.current_thread():
            return False                # none, or the start's own AutoRemove after it failed
        self._removed_recently[cid] = time.monotonic() + 30    # its killed runc init may come back a zombie
        recovery.cancel_start(self, cid, attempt)
        return True

    def _undo_start(self, cid: str, bundle: str, pid: int, attempt: recovery.StartAttempt) -> None:
        recovery.undo_start(self, cid, bundle, pid, attempt)
        self._reap(cid, bundle)             # a conmon that reported the failure exits

    def unmount(self, bundle: str) -> None:
        unmount_rootfs(bundle)

    def _prepare_and_run(self, row: dict, attempt: recovery.StartAttempt) -> None:
        cid = row["id"]
        bundle = self.bundle(cid)
        os.makedirs(bundle, mode=0o711, exist_ok=True)
        config, host_config = json.loads(row["config"]), json.loads(row["host_config"])
        image_row, _ = self.engine.images.resolve(row["image_id"])
        image_cfg = self.engine.images.config(image_row).get("config") or {}
        layers = self.engine.images.layer_dirs(image_row)
        hostname = config.get("Hostname") or cid[:12]
        etc = write_etc_files(bundle, hostname, host_config)
        pid_ns = self._pid_namespace_to_join(host_config)
        rootfs = mount_rootfs(bundle, layers)
        pid = 0
        try:
            faults.point("start:after-mount")
            attempt.check(cid)
            spec = build_spec(rootfs=rootfs, container_id=cid, image_config=image_cfg, config=config,
                              host_config=host_config, hostname=hostname,
                              cgroups_path=f"/{self.cgroup_parent}/{cid}", netns_path=None, etc_files=etc,
                              pid_ns_path=pid_ns, daemon_seccomp=self.engine.config.seccomp_profile,
                              daemon_no_new_privileges=self.engine.config.no_new_privileges)
            with open(os.path.join(bundle, "config.json"), "w") as fh:
                fh.write(json.dumps(spec))      # dumps uses the C encoder; dump() iterates in Python
            faults.point("start:after-bundle")
            self.monitor.cleanup(cid, bundle)     # an exit file of a previous run
            attempt.check(cid)
            pid = self.monitor.create(cid, bundle, row["name"], stdin=bool(config.get("OpenStdin")),
                                      stdin_once=bool(config.get("StdinOnce")), tty=bool(config.get("Tty")),
                                      keep_log=(host_config.get("LogConfig") or {}).get("Type") != "none")
            faults.point("start:after-runc-create")
            attempt.check(cid)
            self._connect_waiting_attaches(cid, bundle)   # before the process runs: no output is missed
            faults.point("start:before-release", attempt.cancelled)
            attempt.check(cid)
            self.monitor.start(cid, pid)
            faults.point("start:after-release")
            attempt.check(cid)
        except BaseException:
            self._undo_start(cid, bundle, pid, attempt)
            raise
        self.engine.store.append([NewEvent("container", "start", cid, self._attrs(row), payload={"pid": pid})])
        faults.point("start:after-start-event")

    def _pid_namespace_to_join(self, host_config: dict) -> str | None:
        """/proc/<pid>/ns/pid of the container PidMode `container:<id>` names; moby's errors when it is
        gone or not running (the caller holds the lock)."""
        kind, target = pid_mode(host_config)
        if kind != "container":
            return None
        try:
            other = self.resolve(target)
        except NotFound as err:
            raise NotFound(f"failed to join PID namespace: {err}") from None
        if other["state"] not in ("running", "paused") or not other["pid"]:
            raise Conflict(f"failed to join PID namespace: container {other['id']} is not running")
        return f"/proc/{other['pid']}/ns/pid"

    def _attrs(self, row: dict) -> dict:
        """Docker's attributes of a container event, labels aside: /events adds those (app/events/labels.py)."""
        return {"image": row["image"], "name": row["name"]}

    # ------------------------------------------------------------------------------ attach

    def _hub(self, cid: str, bundle: str) -> AttachHub:
        """The container's attach hub (one conmon connection), made on first use (caller holds the lock)."""
        hub = self._hubs.get(cid)
        if hub is None or hub.closed.is_set():
            hub = AttachHub(self.monitor.connect_attach(cid, bundle), cid[:12])
            self._hubs[cid] = hub
        return hub

    def reserve_attach(self, cid: str) -> _AttachWaiter:
        """Take a place on the container's attach hub: subscribed now if it runs, else queued for its
        next start. Done before the client hears that its attach is in place, because the next thing
        a client like `docker run` does is start the container, and output must not run ahead."""
        waiter = _AttachWaiter()
        with self.lock:
            row = self.resolve(cid)
            if self._closing.is_set():
                waiter.ready.set()
            elif row["state"] in ("running", "paused"):
                try:
                    waiter.conn = self._hub(cid, self.bundle(cid)).subscribe()
                except OSError:     # it exited a moment ago; nothing more will come
                    pass
                waiter.ready.set()
            else:
                self._attach_waiters.setdefault(cid, []).append(waiter)
        return waiter

    def attach_connection(self, waiter: _AttachWaiter, client_gone) -> "Subscription | None":
        """The reserved subscription, once the container runs. None if the container is removed first,
        its start fails, the daemon stops, or `client_gone()` says the client hung up while waiting.
        The caller ends every reservation with cancel_attach, whether or not it got this far."""
        while not waiter.ready.wait(0.2):
            if self._closing.is_set() or client_gone():
                break
        return waiter.conn

    def cancel_attach(self, cid: str, waiter: _AttachWaiter) -> None:
        """Stop waiting for a start (the attach ended or never got going)."""
        with self.lock:
            waiting = self._attach_waiters.get(cid, [])
            if waiter in waiting:
                waiting.remove(waiter)
            if not waiting:
                self._attach_waiters.pop(cid, None)

    def _connect_waiting_attaches(self, cid: str, bundle: str) -> None:
        self._hubs.pop(cid, None)           # a previous run's hub has ended with that run
        for waiter in self._attach_waiters.pop(cid, []):
            try:
                waiter.conn = self._hub(cid, bundle).subscribe()
            except OSError:
                logging.getLogger("berth").exception("attach %s", cid[:12])
            waiter.ready.set()

    def resize(self, ref: str, height: int, width: int) -> None:
        row = self.resolve(ref)
        if row["state"] not in ("running", "paused"):
            raise Conflict(f"container {row['id']} is not running")
        if not json.loads(row["config"]).get("Tty"):
            return                          # Docker accepts a resize of a non-tty container and ignores it
        try:
            self.monitor.resize(row["id"], self.bundle(row["id"]), height, width)
        except OSError as err:
            raise Conflict(f"container {row['id']} is not running") from err

    def record_attach(self, cid: str, action: str) -> None:
        """`attach` / `detach` events, in Docker's shape."""
        rows = self._q("SELECT * FROM containers WHERE id=?", (cid,))
        if rows:
            self.engine.store.append([NewEvent("container", action, cid, self._attrs(dict(rows[0])))])

    # ------------------------------------------------------------------------------ exits

    def _watch(self) -> None:
        """Wake on conmon's exit files as they appear (inotify on the exits dir), with a slow poll as
        a safety net; polling alone added up to its interval to every `wait`."""
        notify = self._notify
        try:
            while not self._stop.is_set():
                notify.wait(WATCH_FALLBACK_SECONDS)
                self._collect_exits()
        finally:
            notify.close()

    def _collect_exits(self) -> None:
        try:
            self._reap_children()
            for (cid,) in self._q("SELECT id FROM containers WHERE state IN ('running', 'paused')"):
                if self.monitor.exit_code(cid) is not None:
                    self.finish(cid)
                elif self.monitor.conmon_pid(cid, self.bundle(cid)) is None and self.monitor.exit_code(cid) is None:
                    self.finish(cid, code=255)      # conmon died (killed?) and left no code: as reconcile does
        except Exception:  # noqa: BLE001 - the watcher must survive one bad container
            logging.getLogger("berth").exception("exit watcher")

    def finish(self, cid: str, code: int | None = None) -> None:
        """Record an exit: oom/die events, runc state deleted, rootfs unmounted, waiters woken."""
        with self.lock:
            rows = self._q("SELECT * FROM containers WHERE id=?", (cid,))
            if not rows or rows[0]["state"] not in ("running", "paused"):
                return
            row = dict(rows[0])
            bundle = self.bundle(cid)
            if code is None:
                code = self.monitor.exit_code(cid)
                if code is None:
                    # The exit file seen outside the lock was a previous run's, removed by a start in
                    # between (restart): this run has not exited. Acting on it killed restarted containers.
                    return
            oom = self.monitor.oom_killed(cid, bundle)
            self.runc.forget_stopped(cid)
            unmount_rootfs(bundle)
            self._reap(cid, bundle, row["pid"])
            started = row["started_nano"]
            events = [NewEvent("container", "oom", cid, self._attrs(row))] if oom else []
            events.append(NewEvent("container", "die", cid, {
                **self._attrs(row), "exitCode": str(code),
                "execDuration": str(max(0, (time.time_ns() - started) // 1_000_000_000))}))
            self.engine.store.append(events)
            self.exited.notify_all()
            faults.point("exit:after-die")
            if json.loads(row["host_config"]).get("AutoRemove"):    # `docker run --rm`
                self.remove(cid, force=False)

    def _reap(self, cid: str, bundle: str, container_pid: int = 0) -> None:
        """conmon is our child when the daemon is a subreaper (app/daemon.py): collect it once it has
        exited (it may outlive the exit file by a moment, so the watcher retries). If conmon itself
        died, the container's init was re-parented to us as well."""
        pid = self.monitor.conmon_pid_any(cid, bundle)
        self._unreaped.update(p for p in (pid, container_pid) if p)
        self._reap_children()

    def _reap_children(self) -> None:
        """waitpid only zombies whose parent is this daemon, so a recycled pid in a stale pidfile can
        never take the exit status of a child that `subprocess` is waiting for."""
        me = os.getpid()
        self._adopt_zombies_of_removed(me)
        for pid in list(self._unreaped):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
                state, parent = fields[0], int(fields[1])
            except (OSError, IndexError, ValueError):
                self._unreaped.discard(pid)         # gone: reaped by someone
                continue
            if parent != me:
                self._unreaped.discard(pid)         # not ours to reap (no subreaper, or another parent)
            elif state == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                self._unreaped.discard(pid)

    def _adopt_zombies_of_removed(self, me: int) -> None:
        """Zombies of this daemon still in a removed container's cgroup (a start cut by rm -f: its runc
        init comes to the subreaper). They are never `subprocess` children, so reaping them is safe."""
        now = time.monotonic()
        for cid, until in list(self._removed_recently.items()):
            if until < now:
                self._removed_recently.pop(cid, None)
        if not self._removed_recently:
            return
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
                if fields[0] != "Z" or int(fields[1]) != me:
                    continue
                with open(f"/proc/{name}/cgroup") as fh:
                    cgroups = fh.read()
            except (OSError, IndexError, ValueError):
                continue
            if any(cid in cgroups for cid in self._removed_recently):
                self._unreaped.add(int(name))

    def reconcile(self) -> None:
        """At start: exits that happened while the daemon was away, and whatever a start or rm cut
        short left on the host (app/runtime/recovery.py)."""
        recovery.reconcile(self)

    # ------------------------------------------------------------------------------ stop / kill

    def kill(self, ref: str, signal: str | int = "KILL", wait: bool = False) -> None:
        """Send a signal. With `wait` (the API's kill), SIGKILL returns only once the container has
        exited (10 s at most), as moby's ContainerKill does, so an inspect right after sees it stopped."""
        number = parse_signal(signal)
        if wait and number == 9:
            cid = self.resolve(ref)["id"]
            self.kill(ref, 9)                # the reference as given: Docker's message names it
            self._thaw(cid)                  # a frozen process cannot die
            self.wait_exit(cid, 10)
            return
        with self.lock:
            row = self.resolve(ref)
            not_running = Conflict(f"cannot kill container: {ref}: container {row['id']} is not running")
            if row["state"] not in ("running", "paused"):
                raise not_running
            try:
                self.runc.kill(row["id"], number)
            except RuncError as err:
                if "not running" in str(err):   # it exited just now; the watcher records it
                    raise not_running from err
                raise
            self.engine.store.append([NewEvent("container", "kill", row["id"],
                                               {**self._attrs(row), "signal": str(number)})])

    def wait_exit(self, cid: str, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while True:
                state = self._q("SELECT state FROM containers WHERE id=?", (cid,))
                if not state or state[0][0] not in ("running", "paused"):
                    return True
                if self.monitor.exit_code(cid) is not None:
                    self.finish(cid)
                    continue
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.exited.wait(min(left, WATCH_SECONDS * 4) if left is not None else WATCH_SECONDS * 4)

    def wait_condition(self, cid: str, condition: str, after_seq: int, client_gone=lambda: False) -> int | None:
        """`POST /wait`: block until the condition holds and return the exit code. Exits are read from
        the log after `after_seq` (the log's end when the request arrived), so a container that starts
        and exits between two looks is still seen: polling the state alone missed those."""
        while True:
            with self.lock:
                rows = self._q("SELECT state FROM containers WHERE id=?", (cid,))
                state = rows[0][0] if rows else None
                if state in ("running", "paused") and self.monitor.exit_code(cid) is not None:
                    self.finish(cid)
                    continue
                died = self._q("SELECT attributes FROM events WHERE stream=? AND seq>? AND action='die'"
                               " ORDER BY seq LIMIT 1", (f"container:{cid}", after_seq))
                if state is None:               # removed: every condition is over (moby's State.Wait)
                    return self.last_exit_code(cid)
                if condition == "removed":
                    pass
                elif died:
                    return int(json.loads(died[0][0]).get("exitCode", "0"))
                elif condition == "not-running" and state not in ("running", "paused"):
                    code = self._q("SELECT exit_code FROM containers WHERE id=?", (cid,))
                    return int(code[0][0]) if code else self.last_exit_code(cid)
                if self._closing.is_set() or self._stop.is_set() or client_gone():
                    return None             # shutdown, or nobody is listening any more
                self.exited.wait(WATCH_SECONDS * 4)

    def last_exit_code(self, cid: str) -> int:
        """The code of the container's latest `die` event: the log outlives an auto-removed row.
        Read newest first, so the scan stops at the recent event."""
        rows = self._q("SELECT attributes FROM events WHERE action='die' AND type='container' AND actor_id=?"
                       " ORDER BY seq DESC LIMIT 1", (cid,))
        return int(json.loads(rows[0][0]).get("exitCode", "0")) if rows else 0

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        row = self.resolve(ref)
        if row["state"] not in ("running", "paused"):
            raise NotModified("container already stopped")
        config = json.loads(row["config"])
        sig = parse_signal(signal or config.get("StopSignal") or "TERM")
        if timeout is None:
            timeout = config.get("StopTimeout")
        timeout = 10 if timeout is None else int(timeout)
        try:
            self.kill(row["id"], sig)
        except (Conflict, RuncError):
            pass
        self._thaw(row["id"])                  # a frozen process cannot act on (or die of) a signal
        if not self.wait_exit(row["id"], timeout if timeout >= 0 else None):   # negative: wait for ever
            try:
                self.kill(row["id"], 9)
            except (Conflict, RuncError):
                pass
            self.wait_exit(row["id"], None)
        # `row` may be gone by now (AutoRemove); its attributes still name the container
        self.engine.store.append([NewEvent("container", "stop", row["id"], self._attrs(row))])

    # ------------------------------------------------------------------------------ pause / rename / restart

    def pause(self, ref: str) -> None:
        with self.lock:
            row = self.resolve(ref)
            if row["state"] == "paused":
                raise Conflict(f"Container {row['id']} is already paused")
            if row["state"] != "running":
                raise Conflict(f"container {row['id']} is not running")
            self.runc.pause(row["id"])       # the cgroup freezer
            self.engine.store.append([NewEvent("container", "pause", row["id"], self._attrs(row))])

    def _thaw(self, cid: str) -> None:
        """Unfreeze a paused container so a signal sent to it takes effect (Docker does the same)."""
        with self.lock:
            rows = self._q("SELECT * FROM containers WHERE id=?", (cid,))
            if rows and rows[0]["state"] == "paused":
                try:
                    self.runc.resume(cid)
                except RuncError:
                    return
                self.engine.store.append([NewEvent("container", "unpause", cid, self._attrs(dict(rows[0])))])

    def unpause(self, ref: str) -> None:
        with self.lock:
            row = self.resolve(ref)
            if row["state"] != "paused":
                raise Conflict(f"Container {row['id']} is not paused")
            self.runc.resume(row["id"])
            self.engine.store.append([NewEvent("container", "unpause", row["id"], self._attrs(row))])

    def rename(self, ref: str, new_name: str) -> None:
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        with self.lock:
            row = self.resolve(ref)
            if new_name.lstrip("/") == row["name"]:
                raise InvalidParameter("Renaming a container with the same name as its current name")
            try:
                name = self._name(new_name)
            except Conflict as err:
                raise Conflict(f"Error when allocating new name: {err}") from None
            attrs = {**self._attrs(row), "name": name, "oldName": "/" + row["name"]}
            self.engine.store.append([NewEvent("container", "rename", row["id"], attrs)])

    def restart(self, ref: str, timeout: int | None = None) -> None:
        row = self.resolve(ref)
        if row["state"] in ("running", "paused"):
            self.stop(row["id"], timeout)
        self.start(row["id"])
        row = self.resolve(row["id"])
        self.engine.store.append([NewEvent("container", "restart", row["id"], self._attrs(row))])

    # ------------------------------------------------------------------------------ top / diff

    def top(self, ref: str, ps_args: str = "-ef") -> dict:
        """`docker top`: the host's `ps` output, narrowed to the container's processes (host pids)."""
        row = self.resolve(ref)
        if row["state"] not in ("running", "paused"):
            raise Conflict(f"container {row['id']} is not running")
        pids = {str(p) for p in self.runc.pids(row["id"])}
        args = ps_args.split() or ["-ef"]
        result = subprocess.run(["ps", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise InvalidParameter(f"Error running ps: {result.stderr.strip()}")
        lines = result.stdout.splitlines()
        titles = lines[0].split()
        if "PID" not in titles:
            raise InvalidParameter("Couldn't find PID field in ps output")
        col = titles.index("PID")
        processes = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > col and fields[col] in pids:
                processes.append(fields)
        self.engine.store.append([NewEvent("container", "top", row["id"], self._attrs(row))])
        return {"Titles": titles, "Processes": processes}

    def changes(self, ref: str) -> list[dict]:
        """`docker diff`: what the container changed against its image (Kind 0 = C, 1 = A, 2 = D)."""
        from app.runtime.overlay import changes
        row = self.resolve(ref)
        image_row, _ = self.engine.images.resolve(row["image_id"])
        layers = self.engine.images.layer_dirs(image_row)
        upper = os.path.join(self.bundle(row["id"]), "upper")
        if not os.path.isdir(upper):
            return []
        kinds = {"C": 0, "A": 1, "D": 2}
        found = [(kind, path) for kind, path in changes(upper, layers) if not _runtime_made(path)]
        dropped_parents = {p for kind, p in changes(upper, layers) if _runtime_made(p)}
        dropped_parents = {os.path.dirname(p) for p in dropped_parents}
        kept = []
        for kind, path in found:
            # a directory that only changed because the runtime put a mount point in it is not a change
            if kind == "C" and path in dropped_parents and not any(
                    other.startswith(path.rstrip("/") + "/") for _, other in found):
                continue
            kept.append({"Path": path, "Kind": kinds[kind]})
        return kept

    def export(self, ref: str):
        """`docker export`: a tar of the container's filesystem (its merged view), streamed in chunks."""
        from app.runtime.layers import write_layer_tar
        row = self.resolve(ref)
        cid = row["id"]
        bundle = self.bundle(cid)
        image_row, _ = self.engine.images.resolve(row["image_id"])
        layers = self.engine.images.layer_dirs(image_row)
        with self.lock:
            mounted_here = row["state"] not in ("running", "paused")
            rootfs = mount_rootfs(bundle, layers)
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def produce():
            try:
                with os.fdopen(write_fd, "wb") as out:
                    write_layer_tar(rootfs, out)
            except BaseException as err:  # noqa: BLE001 - reported to the reader below
                failure.append(err)

        writer = threading.Thread(target=produce, name=f"export {cid[:12]}", daemon=True)
        writer.start()
        self.engine.store.append([NewEvent("container", "export", cid, self._attrs(row))])

        def chunks():
            try:
                with os.fdopen(read_fd, "rb") as src:
                    while chunk := src.read(1 << 20):
                        yield chunk
                writer.join()
            finally:
                if mounted_here:
                    with self.lock:
                        state = self._q("SELECT state FROM containers WHERE id=?", (cid,))
                        if not state or state[0][0] not in ("running", "paused"):
                            unmount_rootfs(bundle)

        return chunks()

    # ------------------------------------------------------------------------------ remove

    def remove(self, ref: str, force: bool) -> None:
        """The state is checked and the container destroyed under the lock, so a start cannot slip in
        between (that once destroyed a running container without a die). A forced removal kills
        outside the lock, because seeing the exit needs the watcher, and then checks again."""
        cid = self.resolve(ref)["id"]
        killed = force and self._cancel_start(cid)      # a start in flight (maybe hanging) is ended first
        while True:
            with self.lock:
                rows = self._q("SELECT * FROM containers WHERE id=?", (cid,))
                if not rows:
                    if killed:
                        return              # AutoRemove removed it on its exit (`rm -f` of a `--rm` container)
                    raise NotFound(f"No such container: {ref}")
                row = dict(rows[0])
                if row["state"] not in ("running", "paused", "restarting"):
                    self._destroy(row)
                    return
                if not force and row["state"] == "paused":
                    raise Conflict(f'cannot remove container "/{row["name"]}": container is paused and must be '
                                   "unpaused first")
                if not force:
                    raise Conflict(f'cannot remove container "/{row["name"]}": container is running: stop the '
                                   "container before removing or force remove")
            recovery.mark_removing(self, cid)           # a cut from here on is finished at the next boot
            try:
                self.kill(cid, 9)
            except Conflict:
                pass
            faults.point("rm:after-kill")
            self._thaw(cid)
            self.wait_exit(cid, None)
            killed = True

    def _destroy(self, row: dict) -> None:
        """Remove a container that is not running (caller holds the lock). The removal marker makes
        the next boot finish a removal cut at any step (app/runtime/recovery.py)."""
        cid = row["id"]
        bundle = self.bundle(cid)
        recovery.mark_removing(self, cid)
        unmount_rootfs(bundle)
        faults.point("rm:after-unmount")
        if self.runc.known(cid):                # finish() has usually deleted it already
            self.runc.delete(cid, force=True)
        faults.point("rm:after-runc-delete")
        self.monitor.kill(cid, bundle)          # nothing may outlive the container: a stray conmon,
        recovery.kill_cgroup(self.cgroup_parent, cid)   # or cgroups a cut start left
        self.monitor.cleanup(cid, bundle)
        shutil.rmtree(bundle, ignore_errors=True)
        faults.point("rm:before-destroy")
        self.engine.store.append([NewEvent("container", "destroy", cid, self._attrs(row))])
        recovery.unmark_removing(self, cid)
        self._release_attach_waiters(row["id"])
        self._hubs.pop(row["id"], None)
        self.exited.notify_all()

    def _release_attach_waiters(self, cid: str) -> None:
        for waiter in self._attach_waiters.pop(cid, []):
            waiter.ready.set()              # an attach waiting for a start that will not come

    def prune(self, until_ns: int | None, labels: set[str], not_labels: set[str]) -> dict:
        """`docker container prune`: remove every container that is not running (created, exited,
        dead), narrowed by `until` (created before) and `label` / `label!` filters, as moby does."""
        deleted, reclaimed = [], 0
        for (cid,) in self._q("SELECT id FROM containers WHERE state NOT IN ('running', 'paused', 'restarting')"
                              " ORDER BY created_nano"):
            rows = self._q("SELECT * FROM containers WHERE id=?", (cid,))
            if not rows:
                continue
            row = dict(rows[0])
            row_labels = json.loads(row["labels"])
            if until_ns is not None and row["created_nano"] >= until_ns:
                continue
            if labels and not labels_match(labels, row_labels):
                continue
            if not_labels and any(labels_match([want], row_labels) for want in not_labels):
                continue
            size = dir_size(os.path.join(self.bundle(cid), "upper"))
            try:
                self.remove(cid, force=False)
            except (Conflict, NotFound):
                continue                    # started or removed meanwhile
            deleted.append(cid)
            reclaimed += size
        self.engine.store.append([NewEvent("container", "prune", "", {"reclaimed": str(reclaimed)})])
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def end_attaches(self) -> None:
        """Daemon shutdown: end every attach stream (containers keep running; clients see EOF)."""
        self._closing.set()
        with self.lock:
            hubs, self._hubs = list(self._hubs.values()), {}
        for hub in hubs:
            hub.close()

    def close(self) -> None:
        """Stop watching (containers keep running under conmon); drop our cgroup parent if empty."""
        self._stop.set()
        self._notify.wake()
        self._watcher.join()
        for controller in os.listdir("/sys/fs/cgroup") if os.path.isdir("/sys/fs/cgroup") else ():
            try:
                os.rmdir(os.path.join("/sys/fs/cgroup", controller, self.cgroup_parent))
            except OSError:
                pass
