"""Exec sessions under conmon (`conmon --exec`), so an exec's stdio and exit code do not depend on the
daemon: the same monitor that supervises containers (docs/conmon-runc-notes.md), in its exec mode.

One directory per exec session (`<container bundle>/exec/<exec id>/`) holds what conmon and runc make:
`process.json` (the OCI process runc execs), `pidfile` (the exec's host pid), `conmon.pid`, the
attach socket `attach` (bound through /proc/self/fd, so the path length does not matter:
`--full-attach`), the `ctl`/`winsz` FIFOs (resize), and `exit` (the exit code, `--persist-dir`).

The protocol, from conmon 2.1.6's source (src/conmon.c, cli.c, runtime_args.c, parent_pipe_fd.c):
- conmon runs `runc exec --pid-file P --process F --detach [--tty --console-socket S] <container>`
  and stays as the exec's subreaper; `--api-version 1` makes the sync messages `{"data": N}`.
- `_OCI_STARTPIPE`: one read before conmon double-forks; with `--exec-attach` a second read, in the
  child that will exec runc, after conmon has sent `{"data": 0}` on `_OCI_ATTACHPIPE` (its attach
  socket is listening). A client connected in between misses no output.
- `_OCI_SYNCPIPE`: `{"data": pid}` once runc exec returned, or `{"data": -N, "message": runc's stderr}`
  when it failed; then `{"data": exit code}` when the process has ended, written after the exit file.
- conmon writes the sync messages with write(2); if the reader is gone it dies (pexit). So conmon
  gets a copy of the reading end too: a daemon killed between spawning conmon and reading the pid
  can no longer take the exec's monitor with it.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from dataclasses import dataclass

from app.runtime.host.conmon import START_STEP_SECONDS, _alive, connect_attach_socket, wait_exited, write_resize
from app.runtime.host.runc import Runc, RuncError


class ExecStartError(RuncError):
    """runc could not start the exec's process; the message is what the docker CLI prints."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
        self.status = 400 if exit_code in (126, 127) else 500     # moby: startInvalidConfigError, else unknown


def exit_code_for(message: str) -> int:
    """moby's setExitCodeFromError for an exec: 126 can't be invoked, 127 not found, 128 otherwise."""
    text = message.lower()
    if "permission denied" in text or "is a directory" in text:
        return 126
    if "not a directory" in text or "executable file not found" in text or "no such file or directory" in text \
            or "system cannot find the file specified" in text:
        return 127
    return 128


def _runc_exec_message(text: str) -> str:
    """runc's stderr for a failed exec, worded as containerd reports it to moby."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    logged = re.match(r'^time="[^"]*" level=\w+ msg="((?:[^"\\]|\\.)*)"', text)
    if logged:
        text = logged.group(1).encode().decode("unicode_escape")
    if "is a directory" in text.lower() and "permission denied" not in text.lower():
        text += ": permission denied"        # moby: the docker CLI maps only EACCES to 126
    return f"OCI runtime exec failed: {text}: unknown"


@dataclass
class ExecFiles:
    dir: str

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)


class RunningExec:
    """What the daemon holds of an exec it started: the sync pipe (pid, then the exit code)."""

    def __init__(self, pid: int, sync: socket.socket, conmon_pid: int):
        self.pid = pid
        self.sync = sync
        self.conmon_pid = conmon_pid

    def wait_exit(self) -> int | None:
        """Block until conmon reports the exit code; None if conmon went away without one."""
        try:
            while True:
                raw = self.sync.recv(65536)
                if not raw:
                    return None
                for line in raw.decode(errors="replace").splitlines():
                    try:
                        return int(json.loads(line).get("data"))
                    except (ValueError, TypeError, AttributeError):
                        continue
        except OSError:
            return None
        finally:
            self.sync.close()


class ExecMonitor:
    """Spawns and finds exec sessions' conmons."""

    def __init__(self, conmon: str, runc: Runc):
        self.conmon = conmon
        self.runc = runc

    def files(self, exec_dir: str) -> ExecFiles:
        return ExecFiles(exec_dir)

    def spawn(self, container_id: str, exec_id: str, exec_dir: str, process: dict, *, stdin: bool, tty: bool,
              attach) -> RunningExec:
        """Run `process` in the container under a new conmon. `attach`, when given, is called with a
        connected attach socket before the process runs (so no output is missed). ExecStartError when
        runc refuses (a missing binary: 127)."""
        f = self.files(exec_dir)
        os.makedirs(exec_dir, mode=0o700, exist_ok=True)
        with open(f.path("process.json"), "w") as fh:
            json.dump(process, fh)
        argv = [self.conmon, "--api-version", "1", "-c", container_id, "-u", exec_id, "-n", exec_id[:12],
                "-r", self.runc.binary, "-b", exec_dir, "-p", f.path("pidfile"),
                "--conmon-pidfile", f.path("conmon.pid"), "--persist-dir", exec_dir, "--full-attach",
                "-l", "none", "--exec", "--exec-process-spec", f.path("process.json"),
                "--runtime-arg", "--root", "--runtime-arg", self.runc.root]
        if tty:
            argv.append("-t")
        elif stdin:
            argv.append("-i")
        if attach is not None:
            argv.append("--exec-attach")
        sync_parent, sync_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        start_child, start_parent = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        attach_parent, attach_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        keep = os.dup(sync_parent.fileno())   # conmon's own copy of the reading end (module docstring)
        env = dict(os.environ, _OCI_SYNCPIPE=str(sync_child.fileno()), _OCI_STARTPIPE=str(start_child.fileno()))
        fds = [sync_child.fileno(), start_child.fileno(), keep]
        if attach is not None:
            env["_OCI_ATTACHPIPE"] = str(attach_child.fileno())
            fds.append(attach_child.fileno())
        conn = None
        try:
            with open(f.path("conmon.err"), "wb") as err:
                proc = subprocess.Popen(argv, env=env, cwd=exec_dir, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                        pass_fds=tuple(fds))
            for s in (sync_child, start_child, attach_child):
                s.close()
            os.close(keep)
            start_parent.send(b"\0")            # conmon forks away after this
            try:
                wait_exited(proc, START_STEP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise ExecStartError("conmon failed to start the exec: timed out", 126) from None
            conmon_pid = self._read_pid(f.path("conmon.pid"))
            sync_parent.settimeout(START_STEP_SECONDS)
            if attach is not None:
                attach_parent.settimeout(START_STEP_SECONDS)
                try:
                    ready = attach_parent.recv(4096)
                except socket.timeout:
                    ready = b""
                if not ready:
                    self.kill(exec_dir)
                    raise ExecStartError(f"conmon failed to start the exec: {self._error(f)}", 126)
                conn = self.connect(exec_dir)
                attach(conn)
                start_parent.send(b"\0")        # now runc exec runs
            try:
                raw = sync_parent.recv(65536)
            except socket.timeout:
                self.kill(exec_dir)
                raise ExecStartError(f"runc exec did not finish within {START_STEP_SECONDS}s", 126) from None
            if not raw:
                raise ExecStartError(f"conmon failed to start the exec: {self._error(f)}", 126)
            message = json.loads(raw.decode(errors="replace").splitlines()[0])
            pid = int(message.get("data", -1))
            if pid <= 0:
                text = _runc_exec_message(message.get("message", "") or self._error(f))
                raise ExecStartError(text, exit_code_for(text))
            sync_parent.settimeout(None)
            running = RunningExec(pid, sync_parent, conmon_pid)
            sync_parent = None
            return running
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        finally:
            for s in (sync_parent, start_parent, attach_parent):
                if s is not None:
                    s.close()

    @staticmethod
    def _read_pid(path: str) -> int:
        try:
            with open(path) as fh:
                return int(fh.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _error(self, f: ExecFiles) -> str:
        try:
            with open(f.path("conmon.err"), errors="replace") as fh:
                return fh.read().strip() or "no message"
        except OSError:
            return "no message"

    def connect(self, exec_dir: str) -> socket.socket:
        return connect_attach_socket(exec_dir)

    def resize(self, exec_dir: str, height: int, width: int) -> None:
        write_resize(exec_dir, height, width)

    def exit_code(self, exec_dir: str) -> int | None:
        """The code conmon wrote (after the process ended), or None."""
        try:
            with open(os.path.join(exec_dir, "exit")) as fh:
                text = fh.read().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return int(text) if text.lstrip("-").isdigit() else 255

    def exec_pid(self, exec_dir: str) -> int:
        return self._read_pid(os.path.join(exec_dir, "pidfile"))

    def conmon_pid(self, exec_dir: str) -> int | None:
        """The exec's conmon, if it still runs (its pidfile checked against its command line)."""
        pid = self._read_pid(os.path.join(exec_dir, "conmon.pid"))
        if not pid or not _alive(pid):
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            return None
        if not argv or not os.path.basename(argv[0]).startswith(b"conmon") or b"--exec" not in argv \
                or os.path.join(exec_dir, "process.json").encode() not in argv:
            return None
        return pid

    def kill(self, exec_dir: str) -> None:
        """SIGKILL the exec's conmon (its process group: the `runc exec` it runs)."""
        pid = self.conmon_pid(exec_dir)
        if pid:
            for send in (os.killpg, os.kill):
                try:
                    send(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def process_alive_in(self, exec_dir: str, container_id: str) -> int:
        """The exec's process pid if it still runs inside the container (its cgroup names the container),
        else 0: what is left of an exec whose conmon was killed."""
        pid = self.exec_pid(exec_dir)
        if not pid or not _alive(pid):
            return 0
        try:
            with open(f"/proc/{pid}/cgroup") as fh:
                return pid if container_id in fh.read() else 0
        except OSError:
            return 0
