"""The per-container monitor: conmon (Debian's, as Podman and CRI-O use it) supervises each container,
so its stdio, log and exit code do not depend on the daemon staying alive.

The protocol and file layout were verified on this machine; docs/conmon-runc-notes.md has the facts.
conmon runs `runc create`, reports the container pid on a sync pipe, then waits; berth runs
`runc start`. At exit conmon writes the code to <exits>/<id> (and an `oom` marker on a memcg OOM).
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from app.runtime import faults
from app.runtime.host.errors import describe_os_error
from app.runtime.host.runc import Runc, RuncError

# Each step of a start (conmon forking away, `runc create` reporting the pid, the release) gets at
# most this long; a start that hangs beyond it fails and its processes are killed (Containers.start).
START_STEP_SECONDS = 60


def wait_exited(proc: subprocess.Popen, timeout: float) -> None:
    """`proc.wait(timeout)`, woken the moment the process exits. Popen.wait with a timeout polls,
    sleeping 0.5, 1, 2, 4 ... ms between polls, which overshot the first conmon's exit by ~0.5-2 ms on
    every start; a pidfd (Linux 5.3) becomes readable exactly then. TimeoutExpired as Popen.wait."""
    try:
        fd = os.pidfd_open(proc.pid)    # not reaped yet, so the pid is still this child (maybe a zombie)
    except (AttributeError, OSError):
        proc.wait(timeout)
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    proc.wait()


@dataclass
class ContainerFiles:
    bundle: str                 # config.json + rootfs
    userdata: str               # conmon's cwd and persist dir: pidfiles, log, oom marker
    exit_file: str
    socket_link: str            # short path to the bundle, for the attach socket (sun_path is 108 bytes)

    @property
    def log(self) -> str:
        return os.path.join(self.userdata, "ctr.log")

    @property
    def attach_socket(self) -> str:
        return os.path.join(self.socket_link, "attach")


class Monitor:
    def __init__(self, conmon: str, runc: Runc, exits_dir: str, sockets_dir: str):
        self.conmon = conmon
        self.runc = runc
        self.exits_dir = exits_dir
        self.sockets_dir = sockets_dir
        os.makedirs(exits_dir, mode=0o700, exist_ok=True)
        os.makedirs(sockets_dir, mode=0o700, exist_ok=True)

    def files(self, container_id: str, bundle: str) -> ContainerFiles:
        return ContainerFiles(bundle=bundle, userdata=os.path.join(bundle, "userdata"),
                              exit_file=os.path.join(self.exits_dir, container_id),
                              socket_link=os.path.join(self.sockets_dir, container_id))

    def create(self, container_id: str, bundle: str, name: str, stdin: bool = False, stdin_once: bool = False,
               tty: bool = False, log_size_max: int | None = None, keep_log: bool = True) -> int:
        """`runc create` under a new conmon; returns the container's pid. RuncError carries runc's message."""
        f = self.files(container_id, bundle)
        os.makedirs(f.userdata, mode=0o700, exist_ok=True)
        argv = [self.conmon, "--api-version", "1", "-c", container_id, "-u", container_id, "-n", name,
                "-r", self.runc.binary, "-b", bundle, "-p", os.path.join(f.userdata, "pidfile"),
                "--conmon-pidfile", os.path.join(f.userdata, "conmon.pid"), "--exit-dir", self.exits_dir,
                "--persist-dir", f.userdata, "--socket-dir-path", self.sockets_dir, "-l", f"k8s-file:{f.log}" if keep_log else "none",
                "--runtime-arg", "--root", "--runtime-arg", self.runc.root, "--no-new-keyring"]
        if tty:
            argv.append("-t")       # conmon owns the pty; attach input goes to it (as podman runs it)
        elif stdin:
            argv.append("-i")
            if not stdin_once:     # Docker's OpenStdin without StdinOnce: stdin outlives each attach
                argv.append("--leave-stdin-open")
        if log_size_max:
            argv += ["--log-size-max", str(log_size_max)]
        sync_parent, sync_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        start_child, start_parent = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, _OCI_SYNCPIPE=str(sync_child.fileno()), _OCI_STARTPIPE=str(start_child.fileno()))
        try:
            try:
                with open(os.path.join(f.userdata, "conmon.err"), "wb") as err:
                    proc = subprocess.Popen(argv, env=env, cwd=f.userdata, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                            pass_fds=(sync_child.fileno(), start_child.fileno()))
            except OSError as exc:      # conmon missing, not executable, no memory to fork, ...
                raise RuncError(f"conmon failed to create container: {describe_os_error(exc)}") from exc
            sync_child.close()
            start_child.close()
            start_parent.send(b"\0")        # conmon waits for this before it forks away
            start_parent.close()
            try:
                wait_exited(proc, START_STEP_SECONDS)   # the first conmon process exits once the monitor is forked
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuncError("conmon failed to create container: timed out") from None
            faults.point("start:after-conmon-spawn")
            sync_parent.settimeout(START_STEP_SECONDS)
            try:
                raw = sync_parent.recv(65536)
            except socket.timeout:
                raise RuncError(f"conmon failed to create container: runc create did not finish within "
                                f"{START_STEP_SECONDS}s") from None
        finally:
            for s in (sync_parent, sync_child, start_parent, start_child):
                s.close()
        if not raw:
            raise RuncError(f"conmon failed to create container: {self._conmon_error(f)}")
        message = json.loads(raw.decode().splitlines()[0])
        pid = int(message.get("data", -1))
        if pid <= 0:
            self.cleanup(container_id, bundle)
            raise RuncError(_runtime_message(message.get("message", "")))
        return pid

    def _conmon_error(self, f: ContainerFiles) -> str:
        try:
            with open(os.path.join(f.userdata, "conmon.err"), errors="replace") as fh:
                return fh.read().strip() or "no message"
        except FileNotFoundError:
            return "no message"

    def connect_attach(self, container_id: str, bundle: str) -> socket.socket:
        """A new connection to conmon's attach socket in the bundle."""
        return connect_attach_socket(self.files(container_id, bundle).bundle)

    def resize(self, container_id: str, bundle: str, height: int, width: int) -> None:
        """Resize the container's terminal through conmon's control FIFO."""
        write_resize(bundle, height, width)

    def start(self, container_id: str, pid: int) -> None:
        """Let the created container run. This is what `runc start` does (runc 1.x: read the byte that
        runc init writes to <state>/exec.fifo, then remove the fifo), done here to save starting
        runc (~5 ms, a tenth of a `run`). `runc start` is still used if the fifo is not there."""
        fifo = os.path.join(self.runc.root, container_id, "exec.fifo")
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            self.runc._run("start", container_id)
            return
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            deadline = time.monotonic() + START_STEP_SECONDS
            while not poller.poll(50):
                alive = _alive(pid)
                if not alive or time.monotonic() > deadline:
                    if poller.poll(0):      # it wrote its byte and exited in between: started (as runc)
                        break
                    raise RuncError("container process is already dead" if not alive else
                                    f"container process was not released within {START_STEP_SECONDS}s")
            try:
                data = os.read(fd, 16)
            except BlockingIOError:
                data = b""
            if not data:
                raise RuncError("cannot start an already running container")
            os.unlink(fifo)
        finally:
            os.close(fd)

    def exit_code(self, container_id: str) -> int | None:
        """The code conmon recorded, or None while the container runs (or if it never started)."""
        try:
            with open(os.path.join(self.exits_dir, container_id)) as fh:
                text = fh.read().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.lstrip("-").isdigit() else 255

    def oom_killed(self, container_id: str, bundle: str) -> bool:
        return os.path.exists(os.path.join(self.files(container_id, bundle).userdata, "oom"))

    def conmon_pid_any(self, container_id: str, bundle: str) -> int | None:
        """The pid conmon recorded, alive or not."""
        try:
            with open(os.path.join(self.files(container_id, bundle).userdata, "conmon.pid")) as fh:
                return int(fh.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def conmon_pid(self, container_id: str, bundle: str) -> int | None:
        """The pid of a conmon that is still alive."""
        pid = self.conmon_pid_any(container_id, bundle)
        return pid if pid and _alive(pid) else None

    def kill(self, container_id: str, bundle: str) -> None:
        """SIGKILL the container's conmon and its process group (conmon is a session leader, and the
        `runc create` it runs belongs to its group). The pid comes from a pidfile, so it is checked to
        still be this container's conmon before anything is sent."""
        pid = self.conmon_pid_any(container_id, bundle)
        if not pid:
            return
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            return
        if not argv or not os.path.basename(argv[0]).startswith(b"conmon") or container_id.encode() not in argv:
            return
        for send in (os.killpg, os.kill):
            try:
                send(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def cleanup(self, container_id: str, bundle: str) -> None:
        """Forget a finished container's monitor files (conmon never removes them)."""
        f = self.files(container_id, bundle)
        for path in (f.exit_file, f.socket_link):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def connect_attach_socket(directory: str) -> socket.socket:
    """Connect to the `attach` socket conmon made in `directory` (a container's bundle or an exec's
    dir). The path goes through /proc/self/fd, so a long data root cannot overflow the 108-byte
    sun_path."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(f"/proc/self/fd/{fd}/attach")
    except OSError:
        sock.close()
        raise
    finally:
        os.close(fd)
    return sock


def write_resize(directory: str, height: int, width: int) -> None:
    """conmon's control FIFO in `directory`: message type 1 is a terminal resize."""
    fd = os.open(os.path.join(directory, "ctl"), os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, f"1 {height} {width}\n".encode())
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    """Running (a zombie, waiting for whoever reaps orphans, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _runtime_message(text: str) -> str:
    """runc's create error, worded the way the docker CLI maps to exit codes 126/127."""
    text = text.strip()
    logged = re.match(r'^time="[^"]*" level=\w+ msg="((?:[^"\\]|\\.)*)"', text)
    if logged:                      # runc's logrus line: keep the message, unescaped
        text = logged.group(1).encode().decode("unicode_escape")
    if text.startswith("runc create failed: "):
        text = text[len("runc create failed: "):]
    return f"failed to create task for container: {text}" if text else "failed to create task for container"


def parse_log_line(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """One k8s-file record `<RFC3339Nano> <stdout|stderr> <F|P> <data>` → (time, stream, partial, data)."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    data = parts[3] if len(parts) == 4 else b""
    return parts[0].decode(), parts[1].decode(), parts[2] == b"P", data
