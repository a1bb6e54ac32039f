"""Security defaults at least Docker's, in real containers (real daemon, runc, busybox): the default
seccomp profile and --security-opt, --privileged, --cap-add ALL, --pid, --device; TLS on tcp:// and
the socket's group (the second half of this file)."""
from __future__ import annotations

import grp
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import time

import docker
import docker.tls
import pytest

from tests.integration.conftest import CLI, DOCKER_BIN, ROOT, docker_cli, needs_docker_cli, remove_all_containers


def run(client, cmd: str, **kwargs) -> str:
    return client.containers.run("busybox", ["sh", "-c", cmd], remove=True, **kwargs).decode()


def status_field(client, name: str, **kwargs) -> str:
    return run(client, f"grep '^{name}:' /proc/self/status", **kwargs).split(":", 1)[1].strip()


def daemon_cap_eff() -> str:
    with open("/proc/self/status") as fh:        # the daemon runs as this test's user, with its capabilities
        return next(x for x in fh if x.startswith("CapEff:")).split()[1]


# ------------------------------------------------------------------------------------------ seccomp

def test_default_seccomp_profile_blocks_unshare_and_a_normal_container_works(docker_client, busybox):
    assert docker_client.info()["SecurityOptions"] == ["name=seccomp,profile=builtin"]     # as dockerd reports it
    assert status_field(docker_client, "Seccomp") == "2"
    with pytest.raises(docker.errors.ContainerError) as err:
        run(docker_client, "unshare -U -r -m true")
    assert b"Operation not permitted" in err.value.stderr
    assert run(docker_client, "echo ok; ls / >/dev/null; ping -c1 -W1 127.0.0.1 >/dev/null; echo done") == "ok\ndone\n"


def test_daemon_defaults_seccomp_profile_and_no_new_privileges(make_daemon, busybox_tar, workdir):
    path = os.path.join(workdir, "daemon-profile.json")
    with open(path, "w") as fh:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}, fh)
    d = make_daemon().start("--seccomp-profile", path, "--no-new-privileges")
    try:
        d.cli("import", busybox_tar, "busybox:latest", check=True)
        client = docker.DockerClient(base_url=d.host, version="1.45", timeout=30)
        assert client.info()["SecurityOptions"] == ["name=seccomp,profile=custom", "name=no-new-privileges"]
        assert run(client, "grep NoNewPrivs /proc/self/status; mkdir /x 2>&1 || true").split("\n")[:2] == [
            "NoNewPrivs:\t1", "mkdir: can't create directory '/x': Operation not permitted"]
        # a container's own options win
        assert run(client, "grep NoNewPrivs /proc/self/status; mkdir /x && echo made",
                   security_opt=["no-new-privileges=false", "seccomp=builtin"]) == "NoNewPrivs:\t0\nmade\n"
        client.close()
    finally:
        remove_all_containers(d)
        d.stop()
    bad = make_daemon(subdir="bad").start("--seccomp-profile", os.path.join(workdir, "none.json"), wait=False)
    assert bad.proc.wait(30) == 1 and "opening seccomp profile" in bad.log()


def test_seccomp_unconfined_and_no_new_privileges(docker_client, busybox):
    assert status_field(docker_client, "Seccomp", security_opt=["seccomp=unconfined"]) == "0"
    assert run(docker_client, "unshare -U -r -m true && echo inside", security_opt=["seccomp=unconfined"]) == "inside\n"
    assert status_field(docker_client, "NoNewPrivs") == "0"
    assert status_field(docker_client, "NoNewPrivs", security_opt=["no-new-privileges"]) == "1"
    assert status_field(docker_client, "NoNewPrivs", security_opt=["no-new-privileges=true"]) == "1"
    assert status_field(docker_client, "NoNewPrivs", security_opt=["no-new-privileges:false"]) == "0"


def test_cap_add_sys_admin_lifts_the_profiles_sys_admin_rules(docker_client, busybox):
    # moby's conditions read the container's capabilities: with CAP_SYS_ADMIN, unshare is allowed.
    out = run(docker_client, "grep Seccomp: /proc/self/status; unshare -U -r -m true && echo unshared",
              cap_add=["SYS_ADMIN"])
    assert out.split() == ["Seccomp:", "2", "unshared"]


@needs_docker_cli
def test_docker_cli_sends_a_custom_profile_file(daemon, busybox, workdir):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    path = os.path.join(workdir, "profile.json")
    with open(path, "w") as fh:
        json.dump(profile, fh)
    r = docker_cli(daemon, "run", "--rm", "--security-opt", f"seccomp={path}", "busybox",
                   "sh", "-c", "grep Seccomp: /proc/self/status; mkdir /made || echo refused")
    assert r.returncode == 0, r.stderr
    assert "Seccomp:\t2" in r.stdout and "refused" in r.stdout and "Permission denied" in r.stderr


@pytest.mark.parametrize("opt,message", [
    ("apparmor=docker-default", "AppArmor is not supported on this host, but the profile 'docker-default' was specified"),
    ("label=type:svirt_apache_t", "SELinux is not supported on this host, but the label 'type:svirt_apache_t'"),
    ("bogus=1", 'invalid --security-opt 2: "bogus=1"'),
    ("nonsense", 'invalid --security-opt 1: "nonsense"'),
    ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ("seccomp={not json", "Decoding seccomp profile failed"),
])
def test_security_opts_berth_cannot_apply_are_refused(docker_client, busybox, opt, message):
    if opt.startswith("apparmor") and os.path.isdir("/sys/module/apparmor"):
        pytest.skip("this host has AppArmor")
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.create("busybox", ["true"], security_opt=[opt])
    assert err.value.status_code == 400
    assert message in err.value.explanation


# ------------------------------------------------------------------------------------------ privileges

def test_privileged_gets_all_capabilities_host_devices_and_no_confinement(docker_client, busybox):
    out = run(docker_client, "grep -E '^(CapEff|Seccomp):' /proc/self/status; test -b /dev/loop0 && echo loop0;"
                             "mkdir -p /m && mount -t tmpfs none /m && echo mounted; grep -q 'sysfs /sys sysfs rw'"
                             " /proc/mounts && echo sys-rw; grep -q ' /proc/sys ' /proc/mounts || echo proc-sys-unmasked",
              privileged=True)
    lines = out.split("\n")
    assert lines[0].split() == ["CapEff:", daemon_cap_eff()]
    assert lines[1].split() == ["Seccomp:", "0"]
    assert lines[2:] == ["loop0", "mounted", "sys-rw", "proc-sys-unmasked", ""]
    # and an unprivileged container has none of that
    out = run(docker_client, "test -e /dev/loop0 || echo no-loop0; mkdir -p /m; mount -t tmpfs none /m 2>/dev/null"
                             " || echo no-mount; grep -q 'sysfs /sys sysfs ro' /proc/mounts && echo sys-ro;"
                             " grep -q ' /proc/sys proc ro' /proc/mounts && echo proc-sys-ro")
    assert out == "no-loop0\nno-mount\nsys-ro\nproc-sys-ro\n"


def test_cap_add_all_and_cap_drop_all(docker_client, busybox):
    assert status_field(docker_client, "CapEff", cap_add=["ALL"]) == daemon_cap_eff()
    assert status_field(docker_client, "CapEff", cap_drop=["ALL"]) == "0000000000000000"
    # drop ALL then add one: just that one (CAP_NET_RAW is bit 13)
    assert status_field(docker_client, "CapEff", cap_drop=["ALL"], cap_add=["NET_RAW"]) == "%016x" % (1 << 13)
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.create("busybox", ["true"], cap_add=["NOT_A_CAP"])
    assert err.value.status_code == 400 and 'unknown capability: "CAP_NOT_A_CAP"' in err.value.explanation


def test_pid_host_sees_the_daemon(docker_client, daemon, busybox):
    pid = daemon.proc.pid
    assert run(docker_client, f"test -d /proc/{pid} && echo seen || echo hidden", pid_mode="host") == "seen\n"
    assert run(docker_client, f"test -d /proc/{pid} && echo seen || echo hidden") == "hidden\n"


def test_pid_container_joins_another_containers_namespace(docker_client, busybox):
    sleeper = docker_client.containers.run("busybox", ["sleep", "300"], detach=True, name="pid-owner")
    try:
        assert run(docker_client, "cat /proc/1/cmdline | tr '\\0' ' '", pid_mode="container:pid-owner") == "sleep 300 "
    finally:
        sleeper.remove(force=True)
    stopped = docker_client.containers.create("busybox", ["true"], name="stopped-owner")
    joiner = docker_client.containers.create("busybox", ["true"], pid_mode="container:stopped-owner")
    with pytest.raises(docker.errors.APIError) as err:
        joiner.start()
    assert err.value.status_code == 409 and "is not running" in err.value.explanation
    joiner.remove()
    stopped.remove()
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.create("busybox", ["true"], pid_mode="sideways")
    assert err.value.status_code == 400 and "invalid PID mode: sideways" in err.value.explanation


def test_device_is_created_and_allowed_in_the_cgroup(docker_client, busybox):
    out = run(docker_client, "test -c /dev/mynull && echo hi > /dev/mynull && echo written",
              devices=["/dev/null:/dev/mynull:rwm"])
    assert out == "written\n"
    # read-only in the device cgroup (loop0 is not in runc's default allow-list): open for writing is refused
    out = run(docker_client, "cat /dev/myloop && echo read; (echo x > /dev/myloop) 2>&1; true",
              devices=["/dev/loop0:/dev/myloop:r"])
    assert out.startswith("read\n") and "Operation not permitted" in out
    c = docker_client.containers.create("busybox", ["true"], devices=["/dev/no-such-device:/dev/x:rwm"])
    with pytest.raises(docker.errors.APIError) as err:
        c.start()
    assert 'error gathering device information while adding custom device "/dev/no-such-device"' in err.value.explanation
    c.remove()


# ------------------------------------------------------------------------------------------ TLS and -G

def _openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(directory: str) -> dict[str, str]:
    """A throwaway CA, a server certificate for 127.0.0.1, a client certificate, and a client
    certificate from another CA; EC keys, so it takes milliseconds."""
    os.makedirs(directory, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}-key.pem", "-out", f"{ca}.pem", "-days", "1",
                 "-subj", f"/CN=berth-test-{ca}", cwd=directory)
    for name, ca, ext in (("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                          ("client", "ca", "extendedKeyUsage=clientAuth"),
                          ("rogue", "rogue-ca", "extendedKeyUsage=clientAuth")):
        with open(os.path.join(directory, f"{name}.ext"), "w") as fh:
            fh.write(ext + "\n")
        _openssl("req", *ec, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
                 "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=directory)
    return {k: os.path.join(directory, f) for k, f in (
        ("ca", "ca.pem"), ("server_cert", "server-cert.pem"), ("server_key", "server-key.pem"),
        ("client_cert", "client-cert.pem"), ("client_key", "client-key.pem"),
        ("rogue_cert", "rogue-cert.pem"), ("rogue_key", "rogue-key.pem"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tls_daemon(make_daemon, workdir, busybox_tar):
    """A daemon on its Unix socket plus tcp://127.0.0.1:<port> with --tlsverify; busybox imported."""
    certs = make_certs(os.path.join(workdir, "certs"))
    d = make_daemon()
    port = free_port()
    tcp = f"tcp://127.0.0.1:{port}"
    d.start("--tlsverify", "--tlscacert", certs["ca"], "--tlscert", certs["server_cert"],
            "--tlskey", certs["server_key"], hosts=[d.host, tcp])
    d.cli("import", busybox_tar, "busybox:latest", check=True)
    yield d, tcp, port, certs
    remove_all_containers(d)
    d.stop()


def cli_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "BERTH_"))}
    env.update(extra)
    return env


def test_mutual_tls_with_our_cli_docker_py_and_the_docker_binary(tls_daemon, workdir, monkeypatch):
    d, tcp, port, certs = tls_daemon
    flags = ["--tlsverify", "--tlscacert", certs["ca"], "--tlscert", certs["client_cert"], "--tlskey", certs["client_key"]]
    r = subprocess.run([sys.executable, CLI, "-H", tcp, *flags, "run", "--rm", "busybox", "echo", "over-tls"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT, env=cli_env())
    assert r.returncode == 0 and r.stdout == "over-tls\n", r.stderr
    # a stream that idles: the daemon checks once a second whether its TLS client is still there
    events = subprocess.Popen([sys.executable, CLI, "-H", tcp, *flags, "events"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env=cli_env())
    try:
        time.sleep(2.5)
        d.cli("create", "--name", "seen-over-tls", "busybox", "true", check=True)
        line = events.stdout.readline()
    finally:
        events.kill()
        events.communicate()
    assert "container create" in line and "seen-over-tls" in line
    time.sleep(1.5)                          # the stream notices its client left: cleanly, no traceback
    assert "Traceback" not in d.log(), d.log()
    # DOCKER_CERT_PATH with ca.pem, cert.pem, key.pem, and BERTH_TLS_VERIFY instead of the flag
    cert_dir = os.path.join(workdir, "cert-path")
    os.makedirs(cert_dir)
    for src, dst in (("ca", "ca.pem"), ("client_cert", "cert.pem"), ("client_key", "key.pem")):
        shutil.copy(certs[src], os.path.join(cert_dir, dst))
    r = subprocess.run([sys.executable, CLI, "-H", tcp, "ps", "-a"], capture_output=True, text=True, timeout=30,
                       cwd=ROOT, env=cli_env(DOCKER_CERT_PATH=cert_dir, BERTH_TLS_VERIFY="1"))
    assert r.returncode == 0 and r.stdout.startswith("CONTAINER ID"), r.stderr

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):    # requests would prefer these to the CA given
        monkeypatch.delenv(name, raising=False)
    tls = docker.tls.TLSConfig(client_cert=(certs["client_cert"], certs["client_key"]), ca_cert=certs["ca"], verify=True)
    client = docker.DockerClient(base_url=f"https://127.0.0.1:{port}", tls=tls, version="1.45", timeout=30)
    try:
        assert client.ping()
        assert client.containers.run("busybox", ["echo", "py-tls"], remove=True) == b"py-tls\n"
    finally:
        client.close()

    if DOCKER_BIN:
        r = subprocess.run([DOCKER_BIN, "-H", tcp, *flags, "run", "--rm", "busybox", "echo", "docker-tls"],
                           capture_output=True, text=True, timeout=60,
                           env=cli_env(DOCKER_CONFIG=os.path.join(workdir, "docker-config")))
        assert r.returncode == 0 and r.stdout == "docker-tls\n", r.stderr


def test_tls_refuses_clients_without_a_good_certificate_and_plain_http(tls_daemon):
    d, tcp, port, certs = tls_daemon
    # no client certificate
    r = subprocess.run([sys.executable, CLI, "-H", tcp, "--tlsverify", "--tlscacert", certs["ca"], "version"],
                       capture_output=True, text=True, timeout=30, cwd=ROOT,
                       env=cli_env(DOCKER_CERT_PATH=os.path.dirname(certs["ca"]) + "/none"))
    assert r.returncode == 1 and "Cannot connect to the berth daemon" in r.stderr
    # a certificate from another CA
    ctx = ssl.create_default_context(cafile=certs["ca"])
    ctx.load_cert_chain(certs["rogue_cert"], certs["rogue_key"])
    for context in (ctx, ssl.create_default_context(cafile=certs["ca"])):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
                    if not s.recv(100):        # TLS 1.3: the refusal comes as an alert after the handshake
                        raise ConnectionError("closed")
    # plain HTTP on the TLS port never reaches the API
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            answer = s.recv(200)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 200") and b"OK" not in answer
    # and the Unix socket stays plain
    assert d.cli("version", check=True).returncode == 0


def test_plain_tcp_warns_on_loopback_and_is_refused_elsewhere(make_daemon):
    d = make_daemon()
    tcp = f"tcp://127.0.0.1:{free_port()}"
    d.start(hosts=[d.host, tcp])
    assert "Binding to IP address without --tlsverify is insecure" in d.log()
    assert d.cli("version", host=tcp).returncode == 0
    d.stop()
    refused = make_daemon(subdir="remote")
    refused.start(hosts=[refused.host, f"tcp://0.0.0.0:{free_port()}"], wait=False)
    assert refused.proc.wait(30) == 1
    assert "refusing to serve the API on tcp://0.0.0.0" in refused.log() and "--tls=false" in refused.log()
    assert not os.path.exists(refused.sock)


def test_socket_group(make_daemon):
    d = make_daemon(subdir="named")
    d.start("-G", "adm")
    assert os.stat(d.sock).st_gid == grp.getgrnam("adm").gr_gid and stat.S_IMODE(os.stat(d.sock).st_mode) == 0o660
    d.stop()
    d = make_daemon(subdir="number")
    d.start("--group", "4242")
    assert os.stat(d.sock).st_gid == 4242
    d.stop()
    d = make_daemon(subdir="default")      # dockerd's default group `docker` does not exist here: root, warned
    d.start()
    if not any(g.gr_name == "docker" for g in grp.getgrall()):
        assert os.stat(d.sock).st_gid == os.getgid()
        assert "could not change group" in d.log() and "group docker not found" in d.log()
    d.stop()
    d = make_daemon(subdir="missing")
    d.start("-G", "no-such-group-here", wait=False)
    assert d.proc.wait(30) == 1 and "group no-such-group-here not found" in d.log()


def test_device_cgroup_rule_allows_a_node_made_inside(docker_client, busybox):
    cmd = "mknod /dev/l0 b 7 0 && (cat /dev/l0 && echo readable) 2>&1; true"
    assert "Operation not permitted" in run(docker_client, cmd)
    assert run(docker_client, cmd, device_cgroup_rules=["b 7:* rwm"]) == "readable\n"
    with pytest.raises(docker.errors.APIError) as err:
        docker_client.containers.create("busybox", ["true"], device_cgroup_rules=["x 1:2 rwm"])
    assert err.value.status_code == 400 and "invalid device cgroup rule format: 'x 1:2 rwm'" in err.value.explanation
