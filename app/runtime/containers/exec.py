"""exec: processes run in a running container (`docker exec`), supervised by conmon's exec mode.

An exec instance is a stream of events, `exec:<exec id>` (app/projections/execs.py): exec_create,
exec_start, exec_die (or berth's exec-failed). The process runs under its own conmon
(app/runtime/host/execmon.py), which outlives the daemon: its stdio goes through conmon's attach
socket (connected before the process runs, so no output is lost), and its exit code is written to
`<exec dir>/exit` and sent on the sync pipe. The daemon reads the sync pipe of every exec it started
(one thread each, blocked in recv) and records exec_die the moment the code arrives; an attached
client's stream ends only after that, so `GET /exec/{id}/json` right after EOF has the code (the
docker CLI and docker-py exit with it). After a restart the execs found running are adopted: their
exit files are polled (reconcile_execs), and an exec whose conmon vanished is recorded as 255 (its
process, if left alone in the container, is killed: it would otherwise run unsupervised).
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import threading
import time

from app.common.detachkeys import parse_detach_keys
from app.errors import ConcurrentChange, Conflict, InvalidParameter, NotFound, SystemError_
from app.events.model import NewEvent
from app.projections import execs as xq
from app.projections.containers import get_container
from app.runtime.containers.security import available_caps
from app.runtime.containers.spec import group_add_gids, resolve_user
from app.runtime.host.execmon import ExecStartError

log = logging.getLogger("berth")
EXIT_WAIT_SECONDS = 10          # an attached stream waits this long for the code after the output ends
ADOPTED_POLL_SECONDS = 0.25
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def replace_or_append_env(defaults: list[str], overrides: list[str]) -> list[str]:
    """moby's ReplaceOrAppendEnvValues: K=V replaces or appends; a bare K unsets K."""
    out = list(defaults)
    index = {e.partition("=")[0]: i for i, e in enumerate(out)}
    for value in overrides or []:
        key, sep, _ = value.partition("=")
        if not sep:
            if key in index:
                out[index[key]] = None
            continue
        if key in index and out[index[key]] is not None:
            out[index[key]] = value
        else:
            index[key] = len(out)
            out.append(value)
    return [e for e in out if e is not None]


class _Session:
    """The daemon's in-memory view of an exec it is starting or started."""

    def __init__(self):
        self.started = threading.Event()    # exec_start (or exec-failed) recorded
        self.done = threading.Event()       # exec_die (or exec-failed) recorded


class ExecConnection:
    """conmon's attach socket for one exec, as `relay` reads it: its end of output is held back until
    the exit code is recorded, so a client that inspects the exec after EOF finds the code."""

    def __init__(self, sock, session: _Session):
        self.sock = sock
        self.session = session

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        if not data:
            self.session.done.wait(EXIT_WAIT_SECONDS)
        return data

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()


class ExecMixin:
    """exec create/start/resize/inspect and the supervision of exec processes (mixed into the service)."""

    # ------------------------------------------------------------------------------ state

    def _exec_sessions(self) -> dict[str, _Session]:
        sessions = self.__dict__.get("_exec_mem")
        if sessions is None:
            sessions = self.__dict__.setdefault("_exec_mem", {})
        return sessions

    def _exec_dir(self, cid: str, eid: str) -> str:
        return os.path.join(self.bundle(cid), "exec", eid)

    def exec_ids(self, cid: str) -> list[str] | None:
        """Container inspect's ExecIDs: execs not yet exited, null when none (as moby)."""
        return xq.exec_ids(self.events, cid) or None

    def get_exec(self, eid: str):
        row = xq.get_exec(self.events, eid)
        if row is None or self.get(row.container_id) is None:
            raise NotFound(f"No such exec instance: {eid}")
        return row

    def _active_container(self, row, name: str):
        """moby's getActiveContainer / getExecConfig checks, with its wording."""
        if row.state == "paused":
            raise Conflict(f"Container {name} is paused, unpause the container before exec")
        if row.state == "restarting":
            raise Conflict(f"Container {row.id} is restarting, wait until the container is running")
        if row.state != "running":
            raise Conflict(f"container {row.id} is not running")
        return row

    def startable_exec(self, eid: str):
        """The exec and its container, if the container can run it now (moby's ExecExists)."""
        ex = xq.get_exec(self.events, eid)
        if ex is None:
            raise NotFound(f"No such exec instance: {eid}")
        row = self.get(ex.container_id)
        if row is None:
            raise NotFound(f"No such container: {eid}")
        return ex, self._active_container(row, row.id)

    # ------------------------------------------------------------------------------ create

    def exec_create(self, ref: str, body: dict, console_size_allowed: bool = True) -> str:
        cmd = body.get("Cmd") or []
        if not cmd:
            raise InvalidParameter("No exec command specified")
        row = self._active_container(self.resolve(ref), ref)
        keys = body.get("DetachKeys") or ""
        if keys:
            try:
                parse_detach_keys(keys)
            except InvalidParameter:
                raise InvalidParameter(f"Invalid escape keys ({keys}) provided") from None
        user = body.get("User") or ""
        if user:
            resolve_user(os.path.join(self.bundle(row.id), "rootfs"), user)     # moby checks it at create
        else:
            user = row.config.get("User") or self._image_config(row).get("User") or ""
        for item in body.get("Env") or []:
            if not item or item.startswith("="):
                raise InvalidParameter(f"invalid environment variable: {item}")
        console = body.get("ConsoleSize") if console_size_allowed else None
        eid = secrets.token_hex(32)
        config = {
            "entrypoint": cmd[0], "arguments": list(cmd[1:]), "tty": bool(body.get("Tty")),
            "privileged": bool(body.get("Privileged")), "user": user, "user_given": bool(body.get("User")),
            "env": list(body.get("Env") or []), "working_dir": body.get("WorkingDir") or "",
            "open_stdin": bool(body.get("AttachStdin")), "open_stdout": bool(body.get("AttachStdout")),
            "open_stderr": bool(body.get("AttachStderr")), "detach_keys": keys,
            "console_size": list(console) if console and any(console) else None,
        }
        cid = row.id

        def still_running(conn):
            now = get_container(conn, cid)
            if now is None:
                raise NotFound(f"No such container: {ref}")
            self._active_container(now, ref)
        self.events.append([NewEvent("container", self._exec_action("exec_create", config), cid,
                                     {**self._attrs(row), "execID": eid}, payload={"config": config},
                                     stream=f"exec:{eid}", expected_version=0)], guard=still_running)
        return eid

    @staticmethod
    def _exec_action(verb: str, config: dict) -> str:
        """moby's action text: `exec_start: ` + entrypoint + " " + the arguments joined."""
        return f"{verb}: {config['entrypoint']} {' '.join(config['arguments'])}"

    def _image_config(self, row) -> dict:
        try:
            image_row, _ = self.images.resolve(row.image_id)
        except NotFound:
            return {}
        return image_row.config.get("config") or {}

    # ------------------------------------------------------------------------------ start

    def exec_start(self, eid: str, attach=None, console_size=None) -> None:
        """Run the exec. `attach(conn)` receives the ExecConnection before the process runs (an
        attached start); without it the exec runs detached. ExecStartError when runc refuses it."""
        ex, row = self.startable_exec(eid)
        if ex.exit_code is not None:
            raise Conflict(f"exec command {eid} has already run")
        sessions = self._exec_sessions()
        session = _Session()
        if ex.state != "created" or sessions.setdefault(eid, session) is not session:
            raise Conflict(f"exec command {eid} is already running")
        config = ex.config
        cid = row.id
        exec_dir = self._exec_dir(cid, eid)
        tty = config["tty"]
        try:
            process = self._exec_process(row, config, console_size)
            start_event = NewEvent("container", self._exec_action("exec_start", config), cid,
                                   {**self._attrs(row), "execID": eid}, stream=f"exec:{eid}", expected_version=1)
            hook = None if attach is None else (lambda sock: attach(ExecConnection(sock, session)))
            try:
                running = self.host.execs.spawn(cid, eid, exec_dir, process, stdin=config["open_stdin"] and
                                                attach is not None, tty=tty, attach=hook)
            except ExecStartError as err:
                self.events.append([start_event, NewEvent(
                    "container", "exec-failed", cid, {**self._attrs(row), "execID": eid}, stream=f"exec:{eid}",
                    payload={"exit_code": err.exit_code, "error": str(err)})])
                session.started.set()
                session.done.set()
                sessions.pop(eid, None)
                shutil.rmtree(exec_dir, ignore_errors=True)
                raise
            start_event.payload = {"pid": running.pid, "conmon_pid": running.conmon_pid}
            try:
                self.events.append([start_event])
            except ConcurrentChange:
                raise Conflict(f"exec command {eid} is already running") from None
            session.started.set()
            threading.Thread(target=self._exec_waiter, args=(eid, running, session), daemon=True,
                             name=f"exec-wait {eid[:12]}").start()
        except BaseException:
            if not session.started.is_set():
                sessions.pop(eid, None)
                session.done.set()
            raise

    def _exec_process(self, row, config: dict, console_size) -> dict:
        """The OCI process for runc exec: the container's own (from its config.json: capabilities,
        rlimits, user, no-new-privileges …) with the exec's command, environment, directory, terminal,
        user and privileges, merged as moby's ContainerExecStart and execSetPlatformOpt do."""
        bundle = self.bundle(row.id)
        try:
            with open(os.path.join(bundle, "config.json")) as fh:
                base = json.load(fh)["process"]
        except (OSError, ValueError, KeyError) as err:
            raise Conflict(f"container {row.id} is not running") from err
        process = dict(base)
        tty = config["tty"]
        hostname = row.config.get("Hostname") or row.id[:12]
        defaults = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"] + (["TERM=xterm"] if tty else [])
        own = [e for e in base.get("env") or [] if not (e.startswith("TERM=") and not tty)]
        process["env"] = replace_or_append_env(replace_or_append_env(defaults, own), config["env"])
        process["args"] = [config["entrypoint"], *config["arguments"]]
        process["cwd"] = config["working_dir"] or base.get("cwd") or "/"
        process["terminal"] = tty
        size = console_size or config.get("console_size")
        process.pop("consoleSize", None)
        if tty and size and len(size) == 2 and size[0] and size[1]:
            process["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
        if config.get("user_given"):
            rootfs = os.path.join(bundle, "rootfs")
            uid, gid, extra = resolve_user(rootfs, config["user"])
            extra = sorted(set(extra) | set(group_add_gids(rootfs, row.host_config.get("GroupAdd") or [])))
            process["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
        if config["privileged"]:
            caps = list(available_caps())
            process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        return process

    # ------------------------------------------------------------------------------ exits

    def _exec_waiter(self, eid: str, running, session: _Session) -> None:
        try:
            code = running.wait_exit()
            self._exec_exited(eid, code, running.conmon_pid)
        except Exception:  # noqa: BLE001 - one exec's trouble must not go unnoticed
            log.exception("exec %s", eid[:12])
        finally:
            self.reaper.expect(running.conmon_pid)     # conmon exits right after the code: the watcher reaps it
            session.done.set()
            self._exec_sessions().pop(eid, None)

    def _exec_exited(self, eid: str, code: int | None, conmon_pid: int = 0) -> None:
        """Record exec_die once (the exec's stream version makes a second recording a no-op), reap
        its conmon and remove its directory."""
        ex = xq.get_exec(self.events, eid)
        if ex is None or ex.state != "running":
            return
        exec_dir = self._exec_dir(ex.container_id, eid)
        execs = self.host.execs
        if code is None:
            code = execs.exit_code(exec_dir)
        if code is None:
            if execs.conmon_pid(exec_dir):
                return                              # still supervised: not over
            orphan = execs.process_alive_in(exec_dir, ex.container_id)
            if orphan:                              # its monitor was killed: do not leave it unsupervised
                try:
                    os.kill(orphan, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.reaper.expect(orphan)
            code = 255
        row = self.get(ex.container_id)
        attrs = self._attrs(row) if row is not None else {}
        try:
            self.events.append([NewEvent("container", "exec_die", ex.container_id,
                                         {**attrs, "execID": eid, "exitCode": str(code)},
                                         stream=f"exec:{eid}", expected_version=ex.version)])
        except ConcurrentChange:
            return                                  # recorded by the other path already
        self.reaper.expect(conmon_pid)
        self.reaper.reap()
        shutil.rmtree(exec_dir, ignore_errors=True)

    def reconcile_execs(self) -> None:
        """At boot, after the containers' reconcile: execs that ended while the daemon was away get
        their exec_die; running ones are adopted (their exit files watched); starts cut before their
        exec_start are rolled back (their conmon and process killed)."""
        execs = self.host.execs
        adopted = []
        for ex in xq.execs_in_state(self.events, "running"):
            try:
                exec_dir = self._exec_dir(ex.container_id, ex.id)
                if execs.exit_code(exec_dir) is None and execs.conmon_pid(exec_dir):
                    adopted.append(ex.id)
                else:
                    self._exec_exited(ex.id, None)
            except Exception:  # noqa: BLE001
                log.exception("recovery: exec %s", ex.id[:12])
        for ex in xq.execs_in_state(self.events, "created"):
            exec_dir = self._exec_dir(ex.container_id, ex.id)
            if os.path.isdir(exec_dir):
                pid = execs.process_alive_in(exec_dir, ex.container_id)
                execs.kill(exec_dir)
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                shutil.rmtree(exec_dir, ignore_errors=True)
        if adopted:
            threading.Thread(target=self._watch_adopted_execs, args=(adopted,), daemon=True,
                             name="exec-adopted").start()

    def _watch_adopted_execs(self, eids: list[str]) -> None:
        pending = set(eids)
        while pending and not self._stop.is_set():
            for eid in list(pending):
                ex = xq.get_exec(self.events, eid)
                if ex is None or ex.state != "running":
                    pending.discard(eid)
                    continue
                exec_dir = self._exec_dir(ex.container_id, eid)
                try:
                    if self.host.execs.exit_code(exec_dir) is not None or not self.host.execs.conmon_pid(exec_dir):
                        self._exec_exited(eid, None)
                        pending.discard(eid)
                except Exception:  # noqa: BLE001
                    log.exception("exec %s", eid[:12])
            self.reaper.reap()
            self._stop.wait(ADOPTED_POLL_SECONDS)

    # ------------------------------------------------------------------------------ resize, detach

    def exec_resize(self, eid: str, height: int, width: int) -> None:
        ex, _ = self.startable_exec(eid)
        deadline = time.monotonic() + 10          # moby waits as long for the session to be ready
        while ex.state == "created":              # the start's hijack comes first; its spawn may lag
            session = self._exec_sessions().get(eid)
            if session is not None:
                session.started.wait(max(0.0, deadline - time.monotonic()))
            elif time.monotonic() < deadline:
                time.sleep(0.02)
            if time.monotonic() >= deadline and (session is None or not session.started.is_set()):
                raise SystemError_("timeout waiting for exec session ready")
            ex = xq.get_exec(self.events, eid) or ex
        if ex.state != "running" or not ex.config.get("tty"):
            return
        try:
            self.host.execs.resize(self._exec_dir(ex.container_id, eid), height, width)
        except OSError:
            pass                                    # it has just ended

    def record_exec_detach(self, eid: str) -> None:
        ex = xq.get_exec(self.events, eid)
        row = self.get(ex.container_id) if ex is not None else None
        if row is not None:
            self._note(row, "exec_detach", execID=eid)
