"""Real daemons on temp sockets and data roots, and the clients that drive them."""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, "cli.py")
# Everything the integration tests make lives under this prefix, so the leak check can find it.
TEST_PREFIX = os.path.join(tempfile.gettempdir(), "berth-test-")


# Test daemons' networks. Every daemon gets a slot: a bridge name and subnets no other daemon — of this
# suite or of a concurrent one on the same machine — uses. A slot is held by an flock on a file in a
# fixed directory (not under TMPDIR, which differs between developers), released when the daemon goes.
NET_SLOT_DIR = "/run/berth-test-net"
NET_SLOTS = 512


class NetSlot:
    """Bridge `berth-t<slot>`, default bridge a /22 in 10.200-207, user networks' pool a /20 in 10.210+."""

    def __init__(self):
        os.makedirs(NET_SLOT_DIR, exist_ok=True)
        start = (os.getpid() * 7) % NET_SLOTS
        for i in range(NET_SLOTS):
            n = (start + i) % NET_SLOTS
            fd = os.open(os.path.join(NET_SLOT_DIR, str(n)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.fd, self.n = fd, n
            break
        else:
            raise RuntimeError("no free network slot for a test daemon")
        self.bridge = f"berth-t{n:03x}"
        self.bip = f"10.{200 + n // 64}.{(n % 64) * 4}.1/22"      # 1021 addresses: 300 parallel runs fit
        self.pool = f"base=10.{210 + n // 16}.{(n % 16) * 16}.0/20,size=24"
        self.tag = self.bridge

    def flags(self) -> list[str]:
        return ["--bridge", self.bridge, "--bip", self.bip, "--default-address-pool", self.pool]

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def cleanup_network(slot: "NetSlot") -> None:
    """What a daemon killed without a clean stop may leave: its chains (named by its tag) and bridges.
    Bridges of its user networks are named berth<id>; they are found by their addresses in its pool."""
    import ipaddress
    import subprocess as sp
    pool = ipaddress.ip_network(slot.pool.split(",")[0].split("=", 1)[1])
    own = ipaddress.ip_network(slot.bip, strict=False)
    for line in sp.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        name, addr = parts[1], parts[3]
        net = ipaddress.ip_network(addr, strict=False)
        if name.startswith("berth") and (net.subnet_of(pool) or net == own):
            sp.run(["ip", "link", "del", name], capture_output=True)
    sp.run(["ip", "link", "del", slot.bridge], capture_output=True)
    for table, jumps in (("filter", ["FORWARD"]), ("nat", ["PREROUTING", "OUTPUT", "POSTROUTING"])):
        rules = sp.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout.splitlines()
        for rule in rules:
            words = rule.split()
            if words[:1] == ["-A"] and words[1] in jumps and any(w.endswith("-" + slot.tag) and w.startswith("BERTH-")
                                                                  for w in words):
                sp.run(["iptables", "-w", "-t", table, "-D", *words[1:]], capture_output=True)
        for rule in rules:
            words = rule.split()
            if words[:1] == ["-N"] and words[1].startswith("BERTH-") and words[1].endswith("-" + slot.tag):
                sp.run(["iptables", "-w", "-t", table, "-F", words[1]], capture_output=True)
                sp.run(["iptables", "-w", "-t", table, "-X", words[1]], capture_output=True)


def ping(sock_path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(sock_path)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        s.close()


def until(predicate, timeout: float = 10, interval: float = 0.05):
    """Poll `predicate` until it is true or `timeout` seconds pass; return its last value. For waits on
    a container's own progress, whose pace the test does not control."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


class Daemon:
    """One `python cli.py daemon` process with its own socket, data root and pidfile."""

    def __init__(self, base: str, data_root: str | None = None):
        self.base = base
        self.sock = os.path.join(base, "berth.sock")
        self.host = "unix://" + self.sock
        self.data_root = data_root or os.path.join(base, "root")
        self.cgroup_parent = "berth-test-" + uuid.uuid5(uuid.NAMESPACE_URL, base).hex[:12]
        self.pidfile = os.path.join(base, "berth.pid")
        self.log_path = os.path.join(base, "daemon.log")
        self.proc: subprocess.Popen | None = None
        self.net = NetSlot()

    def command(self, *extra: str, hosts: list[str] | None = None) -> list[str]:
        cmd = [sys.executable, CLI, "daemon", "--data-root", self.data_root, "--pidfile", self.pidfile,
               "--cgroup-parent", self.cgroup_parent, *self.net.flags()]
        for h in hosts or [self.host]:
            cmd += ["-H", h]
        return cmd + list(extra)

    def start(self, *extra: str, hosts: list[str] | None = None, wait: bool = True, **popen) -> "Daemon":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(popen.pop("cmd", None) or self.command(*extra, hosts=hosts),
                                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, **popen)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            if ping(self.sock):
                return
            time.sleep(0.02)
        raise AssertionError(f"daemon did not answer within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 20) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"daemon ignored SIGTERM for {timeout}s:\n{self.log()}")
        return self.proc.returncode if self.proc else 0

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def cli(self, *args: str, check: bool = False, timeout: float = 30, host: str | None = None):
        result = subprocess.run([sys.executable, CLI, "-H", host or self.host, *args], capture_output=True,
                                text=True, timeout=timeout, cwd=ROOT)
        if check:
            assert result.returncode == 0, f"cli {args} failed ({result.returncode}):\n{result.stderr}"
        return result


@pytest.fixture
def workdir():
    base = tempfile.mkdtemp(prefix=os.path.basename(TEST_PREFIX) + uuid.uuid4().hex[:6] + "-")
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_daemon(workdir):
    daemons: list[Daemon] = []

    def make(data_root: str | None = None, subdir: str | None = None) -> Daemon:
        base = os.path.join(workdir, subdir) if subdir else workdir
        os.makedirs(base, exist_ok=True)
        d = Daemon(base, data_root)
        daemons.append(d)
        return d

    yield make
    # A daemon stopped cleanly with no running container has removed its bridges and chains itself;
    # one the test left running is killed, and what its networking left is removed here.
    for d in daemons:
        killed = d.proc and d.proc.poll() is None
        if killed:
            d.proc.kill()
            d.proc.wait()
        if killed or (d.proc and d.proc.returncode not in (0, None)):
            cleanup_network(d.net)
        d.net.release()


def remove_all_containers(d: Daemon) -> None:
    """Tests leave no container behind: force-remove whatever a test created."""
    import docker
    client = docker.APIClient(base_url=d.host, version="1.45", timeout=60)
    try:
        for c in client.containers(all=True):
            client.remove_container(c["Id"], force=True)
    finally:
        client.close()


@pytest.fixture
def daemon(make_daemon):
    d = make_daemon().start()
    yield d
    if d.proc.poll() is None:
        remove_all_containers(d)
    d.stop()


@pytest.fixture
def docker_client(daemon):
    import docker
    client = docker.DockerClient(base_url=daemon.host, version="auto", timeout=30)
    yield client
    client.close()


DOCKER_BIN = shutil.which("docker")
needs_docker_cli = pytest.mark.skipif(DOCKER_BIN is None, reason="the official docker CLI is not installed")


def docker_cli(daemon: Daemon, *args: str, timeout: float = 30):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = os.path.join(daemon.base, "docker-config")
    return subprocess.run([DOCKER_BIN, "-H", daemon.host, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="session")
def busybox_tar():
    """A busybox rootfs tar built from Debian's busybox-static by the same script the README uses."""
    base = tempfile.mkdtemp(prefix=os.path.basename(TEST_PREFIX) + "busybox-")
    path = os.path.join(base, "busybox.tar")
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "make-busybox-tar.sh"), path], check=True)
    yield path
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def busybox(daemon, busybox_tar):
    """The daemon with busybox:latest imported; returns the image ID."""
    r = daemon.cli("import", busybox_tar, "busybox:latest", check=True)
    return r.stdout.strip()


@pytest.fixture
def image_layers(workdir, busybox_tar):
    """busybox imported into a store of its own; its layer dirs, bottom first (overlay lowerdirs)."""
    from app.config import Config
    from app.engine import Engine
    engine = Engine(Config(data_root=os.path.join(workdir, "root"))).start()
    try:
        with open(busybox_tar, "rb") as fh:
            image_id = engine.images.import_tar(fh, "-", "busybox", None, "", [])
        row, _ = engine.images.resolve(image_id)
        yield engine.images.layer_dirs(row)
    finally:
        engine.close()
