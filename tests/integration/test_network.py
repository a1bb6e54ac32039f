"""Networking with real containers (busybox httpd and nc): the default bridge, published ports, links,
user networks, --icc=false, recovery after kill -9, cleanup; driven by our CLI, docker-py and the docker
CLI. Traffic goes only to 127.0.0.1, this host's own address and containers on the test daemon's own
bridges (every destination is checked before it is used)."""
from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
import time
import urllib.request

import docker
import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli, remove_all_containers, until

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/etc"]       # serves /etc/hostname: the container's short ID


def _host_address() -> str:
    """This host's own non-loopback IPv4 address (a local destination)."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        name, addr = line.split()[1], line.split()[3].split("/")[0]
        if not name.startswith(("berth", "docker", "br-")):
            return addr
    pytest.skip("no global IPv4 address on this host")


def _local_or_ours(daemon, ip: str) -> None:
    """The traffic rule: a destination is loopback, this host, or on one of the daemon's subnets."""
    addr = ipaddress.ip_address(ip)
    if addr.is_loopback or ip == _host_address():
        return
    nets = json.loads(daemon.cli("network", "inspect", *[n for n in daemon.cli(
        "network", "ls", "-q").stdout.split()], check=True).stdout)
    subnets = [ipaddress.ip_network(c["Subnet"]) for n in nets for c in (n["IPAM"]["Config"] or [])]
    assert any(addr in s for s in subnets), f"{ip} is not on this daemon's networks"


def _http(host: str, port: int, timeout: float = 3) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/hostname", timeout=timeout) as resp:
        return resp.read().decode().strip()


def _nc_get(daemon, target: str, *run_args: str) -> subprocess.CompletedProcess:
    """A GET of /hostname from a throwaway container, with nc."""
    return daemon.cli("run", "--rm", *run_args, "busybox", "sh", "-c",
                      f"printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target} 80", timeout=30)


def _inspect(daemon, ref: str) -> dict:
    return json.loads(daemon.cli("inspect", ref, check=True).stdout)[0]


def _berth_host_state(tag: str) -> list[str]:
    links = [line for line in subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                                             text=True).stdout.splitlines() if tag in line]
    rules = [line for table in ("filter", "nat") for line in subprocess.run(
        ["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout.splitlines() if tag in line]
    return links + rules


# ------------------------------------------------------------------------------------------ 1. default bridge

def test_default_bridge_address_route_hosts_resolv(daemon, busybox):
    r = daemon.cli("run", "--rm", "--dns-search", "example.test", "--add-host", "db.local:10.1.2.3",
                   "--add-host", "gw.local:host-gateway", "busybox",
                   "sh", "-c", "ip addr show eth0; ip route; echo ---; cat /etc/hosts; echo ---; "
                   "cat /etc/resolv.conf; echo ---; hostname", check=True)
    addr_part, hosts, resolv, hostname = r.stdout.split("---\n")
    subnet = ipaddress.ip_network(daemon.net.bip, strict=False)
    inet = next(line.split()[1] for line in addr_part.splitlines() if line.strip().startswith("inet "))
    ip = ipaddress.ip_interface(inet)
    assert ip.ip in subnet and ip.network == subnet
    mac = next(line.split()[1] for line in addr_part.splitlines() if "link/ether" in line)
    assert mac == "02:42:" + ":".join(f"{b:02x}" for b in ip.ip.packed)
    assert f"default via {daemon.net.bip.split('/')[0]} dev eth0" in addr_part
    assert "127.0.0.1\tlocalhost\n" in hosts and f"{ip.ip}\t{hostname.strip()}\n" in hosts
    assert "10.1.2.3\tdb.local\n" in hosts
    assert f"{daemon.net.bip.split('/')[0]}\tgw.local\n" in hosts      # host-gateway: the bridge's gateway
    assert "search example.test" in resolv
    assert not any(line.startswith("nameserver 127.") for line in resolv.splitlines())


def test_containers_reach_each_other_on_the_bridge_and_inspect_shows_it(daemon, busybox):
    daemon.cli("run", "-d", "--name", "web1", "busybox", *HTTPD, check=True)
    info = _inspect(daemon, "web1")
    ns = info["NetworkSettings"]
    ip = ns["IPAddress"]
    assert ip and ns["Networks"]["bridge"]["IPAddress"] == ip
    assert ns["Gateway"] == daemon.net.bip.split("/")[0] and ns["IPPrefixLen"] == 22
    assert ns["MacAddress"] == "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(ip).packed)
    _local_or_ours(daemon, ip)
    r = _nc_get(daemon, ip)
    assert r.returncode == 0 and r.stdout.strip().endswith(info["Id"][:12])
    daemon.cli("rm", "-f", "web1", check=True)
    assert until(lambda: not [line for line in _berth_host_state("berthv") if daemon.net.bridge in line])


def test_network_none_host_and_container_modes(daemon, busybox):
    r = daemon.cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link", check=True)
    assert "eth0" not in r.stdout and "lo" in r.stdout
    r = daemon.cli("run", "--rm", "--network", "host", "busybox", "hostname", check=True)
    assert r.stdout.strip() == socket.gethostname()
    daemon.cli("run", "-d", "--name", "base1", "busybox", *HTTPD, check=True)
    base_ip = _inspect(daemon, "base1")["NetworkSettings"]["IPAddress"]
    r = daemon.cli("run", "--rm", "--network", "container:base1", "busybox", "sh", "-c",
                   "ip addr show eth0; printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 80",
                   check=True)
    assert base_ip in r.stdout
    r = daemon.cli("create", "--network", "container:nosuch", "busybox", "true")
    assert r.returncode != 0 and "No such container: nosuch" in r.stderr
    r = daemon.cli("create", "--network", "nosuchnet", "busybox", "true")
    assert r.returncode != 0 and "network nosuchnet not found" in r.stderr


# ------------------------------------------------------------------------------------------ 2. publishing

def test_publish_tcp_on_loopback_and_host_address_and_port_output(daemon, busybox):
    host_ip = _host_address()
    cid = daemon.cli("run", "-d", "--name", "pub1", "-p", "18471:80", "busybox", *HTTPD, check=True).stdout.strip()
    assert until(lambda: _try(lambda: _http("127.0.0.1", 18471)) == cid[:12], timeout=10)
    assert _http(host_ip, 18471) == cid[:12]
    # from another container, through the host's address (hairpin)
    r = daemon.cli("run", "--rm", "busybox", "sh", "-c",
                   f"printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host_ip} 18471", check=True)
    assert r.stdout.strip().endswith(cid[:12])
    assert daemon.cli("port", "pub1", check=True).stdout == "80/tcp -> 0.0.0.0:18471\n"
    assert daemon.cli("port", "pub1", "80", check=True).stdout == "0.0.0.0:18471\n"
    r = daemon.cli("port", "pub1", "81")
    assert r.returncode == 1 and "no public port '81' published for pub1" in r.stderr
    ps = daemon.cli("ps", "--format", "{{.Ports}}", check=True).stdout
    assert ps.strip() == "0.0.0.0:18471->80/tcp"
    assert daemon.cli("ps", "-q", "-f", "publish=18471", check=True).stdout.strip() == cid[:12]
    assert daemon.cli("ps", "-q", "-f", "expose=80", check=True).stdout.strip() == cid[:12]
    assert daemon.cli("ps", "-q", "-f", "network=bridge", check=True).stdout.strip() == cid[:12]
    # the port is held while published, and freed with the container
    s = socket.socket()
    with pytest.raises(OSError):
        s.bind(("0.0.0.0", 18471))
    s.close()
    daemon.cli("rm", "-f", "pub1", check=True)
    assert not [line for line in _berth_host_state(daemon.net.tag) if "18471" in line]
    s = socket.socket()
    s.bind(("0.0.0.0", 18471))
    s.close()


def _try(fn):
    try:
        return fn()
    except OSError:
        return None


def test_publish_udp_and_publish_all(daemon, busybox):
    # busybox's nc has no UDP mode: the listener is a Python socket inside the container's namespace
    daemon.cli("run", "-d", "--name", "udp1", "-p", "127.0.0.1:18472:5000/udp", "busybox", "sleep", "60",
               check=True)
    pid = _inspect(daemon, "udp1")["State"]["Pid"]
    listener = subprocess.Popen(
        ["nsenter", "-t", str(pid), "-n", sys.executable, "-c",
         "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5000)); "
         "s.settimeout(10); print('ready', flush=True); print(s.recvfrom(100)[0].decode(), flush=True)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"hello-udp", ("127.0.0.1", 18472))
        s.close()
        assert listener.stdout.readline().strip() == "hello-udp"
    finally:
        listener.kill()
        listener.wait()
    assert daemon.cli("port", "udp1", check=True).stdout == "5000/udp -> 127.0.0.1:18472\n"
    cid = daemon.cli("run", "-d", "--name", "all1", "-P", "--expose", "80", "--expose", "7000-7001", "busybox",
                     *HTTPD, check=True).stdout.strip()
    ports = _inspect(daemon, "all1")["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "7000/tcp", "7001/tcp"}
    host_port = int(ports["80/tcp"][0]["HostPort"])
    low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert low <= host_port <= high
    assert until(lambda: _try(lambda: _http("127.0.0.1", host_port)) == cid[:12], timeout=10)


def test_publish_port_ranges(daemon, busybox):
    cid = daemon.cli("run", "-d", "--name", "rng1", "-p", "127.0.0.1:18480-18481:8000-8001",
                     "-p", "18482-18484:80", "busybox", "sh", "-c",
                     "httpd -p 8000 -h /etc && httpd -p 8001 -h /etc && exec httpd -f -p 80 -h /etc",
                     check=True).stdout.strip()
    assert sorted(daemon.cli("port", "rng1", check=True).stdout.splitlines()) == [
        "80/tcp -> 0.0.0.0:18482", "8000/tcp -> 127.0.0.1:18480", "8001/tcp -> 127.0.0.1:18481"]
    for port in (18480, 18481, 18482):
        assert until(lambda: _try(lambda: _http("127.0.0.1", port)) == cid[:12], timeout=10)
    # the range's first port is taken now: the next container gets the next one
    daemon.cli("run", "-d", "--name", "rng2", "-p", "18482-18484:80", "busybox", *HTTPD, check=True)
    assert daemon.cli("port", "rng2", "80", check=True).stdout == "0.0.0.0:18483\n"
    r = daemon.cli("run", "-d", "--name", "rng3", "-p", "18480-18482:8000-8001", "busybox", "true")
    assert r.returncode != 0 and "invalid ranges specified for container and host Ports: 8000-8001 and " \
        "18480-18482" in r.stderr
    assert daemon.cli("ps", "-aq", "-f", "name=rng3", check=True).stdout == ""
    daemon.cli("rm", "-f", "rng1", "rng2")


def _udp_listener(pid: int, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["nsenter", "-t", str(pid), "-n", sys.executable, "-c",
         "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
         f"s.bind(('0.0.0.0', {port})); s.settimeout(10); print('ready', flush=True); "
         "print(s.recvfrom(100)[0].decode(), flush=True)"],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _conntrack_replies_from(ip: str) -> list[str]:
    """Conntrack entries DNAT'ed to `ip` (reply from it, original sent elsewhere: a published port)."""
    from pyroute2 import NFCTSocket
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple
    out = []
    with NFCTSocket() as ct:
        for e in list(ct.dump()):
            orig = NFCTAttrTuple.from_netlink(socket.AF_INET, e.get_attr("CTA_TUPLE_ORIG"))
            reply = NFCTAttrTuple.from_netlink(socket.AF_INET, e.get_attr("CTA_TUPLE_REPLY"))
            if reply.saddr == ip and orig.daddr != ip:
                out.append(f"{orig} -> {reply}")
    return out


def test_udp_published_port_reused_by_a_new_container_after_rm_f(daemon, busybox):
    """One client socket (one 5-tuple) keeps sending to 127.0.0.1:PORT/udp; when the container is
    removed its conntrack entry goes, so the next container publishing that port gets the datagrams."""
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    try:
        daemon.cli("run", "-d", "--name", "udpa", "-p", "127.0.0.1:18474:5000/udp", "busybox", "sleep", "60",
                   check=True)
        first = _inspect(daemon, "udpa")
        listener = _udp_listener(first["State"]["Pid"], 5000)
        try:
            client.sendto(b"one", ("127.0.0.1", 18474))
            assert listener.stdout.readline().strip() == "one"
        finally:
            listener.kill()
            listener.wait()
        old_ip = first["NetworkSettings"]["IPAddress"]
        assert _conntrack_replies_from(old_ip)
        daemon.cli("rm", "-f", "udpa", check=True)
        assert _conntrack_replies_from(old_ip) == []
        daemon.cli("run", "-d", "--name", "udpfill", "busybox", "sleep", "60", check=True)   # takes a freed IP
        daemon.cli("run", "-d", "--name", "udpb", "-p", "127.0.0.1:18474:5000/udp", "busybox", "sleep", "60",
                   check=True)
        listener = _udp_listener(_inspect(daemon, "udpb")["State"]["Pid"], 5000)
        try:
            client.sendto(b"two", ("127.0.0.1", 18474))
            assert listener.stdout.readline().strip() == "two"
        finally:
            listener.kill()
            listener.wait()
    finally:
        client.close()
        daemon.cli("rm", "-f", "udpa", "udpb", "udpfill")


def test_publish_refusals_leave_nothing(daemon, busybox):
    daemon.cli("run", "--rm", "busybox", "true", check=True)      # the bridge and chains exist from here on
    blocker = socket.socket()
    blocker.bind(("0.0.0.0", 18473))
    try:
        before = [x for x in _berth_host_state(daemon.net.tag) if x.startswith("-")]      # rules
        r = daemon.cli("run", "-d", "--name", "busy1", "-p", "18473:80", "busybox", *HTTPD)
        assert r.returncode != 0 and "Bind for 0.0.0.0:18473 failed: port is already allocated" in r.stderr
        assert _inspect(daemon, "busy1")["State"]["Running"] is False
        assert [x for x in _berth_host_state(daemon.net.tag) if x.startswith("-")] == before
        assert until(lambda: not [x for x in _berth_host_state("berthv") if daemon.net.bridge in x])
    finally:
        blocker.close()
    for spec, text in (("80000:80", "invalid hostPort"), ("1:2:3:4", "invalid port format"),
                       ("abc", "invalid containerPort"), ("80/icmp", "invalid proto")):
        r = daemon.cli("create", "-p", spec, "busybox", "true")
        assert r.returncode != 0 and text in r.stderr, (spec, r.stderr)


# ------------------------------------------------------------------------------------------ 3. links

def test_links_env_and_hosts(daemon, busybox):
    daemon.cli("run", "-d", "--name", "redis1", "--expose", "6379", "-e", "REDIS_PASSWORD=pw", "busybox",
               "sleep", "60", check=True)
    rip = _inspect(daemon, "redis1")["NetworkSettings"]["IPAddress"]
    r = daemon.cli("run", "--rm", "--name", "web2", "--link", "redis1:db", "busybox", "sh", "-c",
                   "env | sort; cat /etc/hosts", check=True)
    out = r.stdout
    assert f"DB_PORT=tcp://{rip}:6379" in out
    assert f"DB_PORT_6379_TCP=tcp://{rip}:6379" in out and f"DB_PORT_6379_TCP_ADDR={rip}" in out
    assert "DB_PORT_6379_TCP_PORT=6379" in out and "DB_PORT_6379_TCP_PROTO=tcp" in out
    assert "DB_NAME=/web2/db" in out and "DB_ENV_REDIS_PASSWORD=pw" in out
    line = next(x for x in out.splitlines() if x.startswith(rip + "\t"))
    assert "db" in line.split() and "redis1" in line.split()
    daemon.cli("stop", "-t", "0", "redis1", check=True)
    r = daemon.cli("run", "--rm", "--link", "redis1:db", "busybox", "true")
    assert r.returncode != 0 and "Cannot link to a non running container: /redis1 AS" in r.stderr
    r = daemon.cli("create", "--link", "nosuch:db", "busybox", "true")
    assert r.returncode != 0 and "could not get container for nosuch" in r.stderr


def test_links_follow_a_new_address_and_rm_l_removes_the_link(daemon, busybox, docker_client):
    daemon.cli("run", "-d", "--name", "kid", "busybox", "sleep", "60", check=True)
    daemon.cli("run", "-d", "--name", "parent", "--link", "kid:k", "busybox", "sleep", "60", check=True)
    old = _inspect(daemon, "kid")["NetworkSettings"]["IPAddress"]
    daemon.cli("stop", "-t", "0", "kid", check=True)
    daemon.cli("network", "disconnect", "bridge", "kid", check=True)
    daemon.cli("network", "connect", "bridge", "kid", check=True)     # a new address
    daemon.cli("start", "kid", check=True)
    new = _inspect(daemon, "kid")["NetworkSettings"]["IPAddress"]
    assert new and new != old
    hosts = daemon.cli("exec", "parent", "cat", "/etc/hosts", check=True).stdout
    line = next(x for x in hosts.splitlines() if "k" in x.split()[1:])
    assert line.split()[0] == new
    daemon.cli("restart", "-t", "0", "parent", check=True)            # the linking container restarts
    out = daemon.cli("exec", "parent", "sh", "-c", "env; cat /etc/hosts", check=True).stdout
    assert f"K_NAME=/parent/k" in out and any(x.split()[:1] == [new] for x in out.splitlines())
    docker_client.api.remove_container("parent/k", link=True)          # docker-py's LinkTest
    assert _inspect(daemon, "parent")["HostConfig"]["Links"] in (None, [])
    hosts = daemon.cli("exec", "parent", "cat", "/etc/hosts", check=True).stdout
    assert not any("k" in x.split()[1:] for x in hosts.splitlines())
    assert _inspect(daemon, "kid")["State"]["Running"]
    daemon.cli("run", "-d", "--name", "p2", "--link", "kid:k2", "busybox", "sleep", "60", check=True)
    daemon.cli("rm", "-l", "/p2/k2", check=True)                       # our CLI
    assert _inspect(daemon, "p2")["HostConfig"]["Links"] in (None, [])
    r = daemon.cli("rm", "-l", "p2/nosuch")
    assert r.returncode != 0 and "No such container: p2/nosuch" in r.stderr


# ------------------------------------------------------------------------------------------ 5. user networks

def test_user_networks_resolve_names_and_aliases_and_isolate(daemon, busybox):
    daemon.cli("network", "create", "front1", check=True)
    daemon.cli("network", "create", "--subnet", _free_subnet(daemon, 1), "back1", check=True)
    try:
        daemon.cli("run", "-d", "--name", "api1", "--network", "front1", "--network-alias", "service",
                   "busybox", *HTTPD, check=True)
        daemon.cli("run", "-d", "--name", "db1", "--network", "back1", "busybox", *HTTPD, check=True)
        api_id = _inspect(daemon, "api1")["Id"]
        for name in ("api1", "service"):
            r = _nc_get(daemon, name, "--network", "front1")
            assert r.returncode == 0 and r.stdout.strip().endswith(api_id[:12]), name
        db_ip = _inspect(daemon, "db1")["NetworkSettings"]["Networks"]["back1"]["IPAddress"]
        _local_or_ours(daemon, db_ip)
        r = _nc_get(daemon, db_ip, "--network", "front1")
        assert api_id[:12] not in r.stdout and "200 OK" not in r.stdout     # isolated
        # connect a running container: it reaches db1 by name; disconnect takes it away again
        daemon.cli("network", "connect", "back1", "api1", check=True)
        r = daemon.cli("exec", "api1", "sh", "-c",
                       "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 2 db1 80", check=True)
        assert r.stdout.strip().endswith(_inspect(daemon, "db1")["Id"][:12])
        assert "eth1" in daemon.cli("exec", "api1", "ip", "-o", "link", check=True).stdout
        daemon.cli("network", "disconnect", "back1", "api1", check=True)
        assert "eth1" not in daemon.cli("exec", "api1", "ip", "-o", "link", check=True).stdout
        r = daemon.cli("network", "rm", "front1")
        assert r.returncode != 0 and "has active endpoints" in r.stderr
        ls = daemon.cli("network", "ls", "--format", "{{.Name}} {{.Driver}}", check=True).stdout.split("\n")
        assert "front1 bridge" in ls and "bridge bridge" in ls and "host host" in ls and "none null" in ls
    finally:
        remove_all_containers(daemon)
        for name in ("front1", "back1"):
            daemon.cli("network", "rm", name)
    assert daemon.cli("network", "ls", "-q", "-f", "type=custom", check=True).stdout == ""


def _free_subnet(daemon, n: int) -> str:
    """A subnet in the test daemon's own pool (its slot), past what automatic allocation hands out first."""
    base = ipaddress.ip_network(daemon.net.pool.split(",")[0].split("=", 1)[1])
    return str(list(base.subnets(new_prefix=24))[-n])


def test_user_network_bad_input(daemon, busybox):
    subnet = _free_subnet(daemon, 2)
    daemon.cli("network", "create", "--subnet", subnet, "net1", check=True)
    try:
        r = daemon.cli("network", "create", "net1")
        assert r.returncode != 0 and "network with name net1 already exists" in r.stderr
        r = daemon.cli("network", "create", "--subnet", subnet, "net2")
        assert r.returncode != 0 and "Pool overlaps with other one on this address space" in r.stderr
        r = daemon.cli("network", "create", "--subnet", daemon.net.bip, "net3")
        assert r.returncode != 0 and "overlaps" in r.stderr
        r = daemon.cli("network", "create", "bridge")
        assert r.returncode != 0 and "pre-defined network" in r.stderr
        r = daemon.cli("run", "--rm", "--network", "net1", "--ip", "10.255.0.9", "busybox", "true")
        assert r.returncode != 0 and "no configured subnet or ip-range contain the IP address" in r.stderr
        r = daemon.cli("run", "--rm", "--network", "net1", "--network-alias", "bad alias!", "busybox", "true")
        assert r.returncode != 0 and "invalid network alias" in r.stderr
        ip = str(ipaddress.ip_network(subnet)[9])
        r = daemon.cli("run", "--rm", "--network", "net1", "--ip", ip, "busybox", "ip", "addr", "show", "eth0",
                       check=True)
        assert ip in r.stdout
        assert daemon.cli("ps", "-aq", check=True).stdout == ""
        assert json.loads(daemon.cli("network", "inspect", "net1", check=True).stdout)[0]["Containers"] == {}
    finally:
        daemon.cli("network", "rm", "net1")


# ------------------------------------------------------------------------------------------ 4. icc / iptables

def test_icc_false_blocks_unlinked_and_allows_linked_exposed_ports(make_daemon, busybox_tar):
    d = make_daemon().start("--icc=false")
    try:
        d.cli("import", busybox_tar, "busybox:latest", check=True)
        d.cli("run", "-d", "--name", "srv1", "--expose", "80", "busybox", *HTTPD, check=True)
        ip = _inspect(d, "srv1")["NetworkSettings"]["IPAddress"]
        _local_or_ours(d, ip)
        r = _nc_get(d, ip)
        assert "200 OK" not in r.stdout
        r = _nc_get(d, ip, "--link", "srv1:srv")
        assert r.returncode == 0 and "200 OK" in r.stdout
    finally:
        remove_all_containers(d)
        d.stop()
    assert _berth_host_state(d.net.tag) == []


def test_iptables_false_writes_no_rules_and_refuses_publishing(make_daemon, busybox_tar):
    d = make_daemon().start("--iptables=false")
    try:
        d.cli("import", busybox_tar, "busybox:latest", check=True)
        r = d.cli("run", "--rm", "busybox", "ip", "addr", "show", "eth0", check=True)
        assert "inet " in r.stdout
        assert not [x for x in _berth_host_state(d.net.tag) if "BERTH" in x]
        r = d.cli("run", "-d", "-p", "18474:80", "busybox", *HTTPD)
        assert r.returncode != 0 and "--iptables=false" in r.stderr
    finally:
        remove_all_containers(d)
        d.stop()
    assert _berth_host_state(d.net.tag) == []


# ------------------------------------------------------------------------------------------ 6. cleanup, recovery

def test_daemon_kill9_keeps_networking_and_restart_adopts_it(make_daemon, busybox_tar):
    d = make_daemon().start()
    try:
        d.cli("import", busybox_tar, "busybox:latest", check=True)
        cid = d.cli("run", "-d", "--name", "keep1", "-p", "18475:80", "busybox", *HTTPD, check=True).stdout.strip()
        assert until(lambda: _try(lambda: _http("127.0.0.1", 18475)) == cid[:12], timeout=10)
        d.kill9()
        assert _http("127.0.0.1", 18475) == cid[:12]          # the kernel's, not the daemon's
        d.start()
        assert _http("127.0.0.1", 18475) == cid[:12]
        assert d.cli("port", "keep1", check=True).stdout == "80/tcp -> 0.0.0.0:18475\n"
        ip = _inspect(d, "keep1")["NetworkSettings"]["IPAddress"]
        cid2 = d.cli("run", "-d", "busybox", "sleep", "30", check=True).stdout.strip()
        assert _inspect(d, cid2)["NetworkSettings"]["IPAddress"] != ip     # never handed out twice
        # the container killed while the daemon is down: the restart drops its rules
        pid = _pid_of(d, cid)
        assert _conntrack_replies_from(ip)                       # the GETs above (TIME_WAIT)
        d.kill9()
        subprocess.run(["kill", "-9", str(pid)], check=True)
        d.start()
        assert until(lambda: not [x for x in _berth_host_state(d.net.tag) if "18475" in x], timeout=10)
        assert _conntrack_replies_from(ip) == []                 # the boot sweep flushed them
    finally:
        if d.proc.poll() is not None:
            d.start()
        remove_all_containers(d)
        d.stop()
    assert _berth_host_state(d.net.tag) == []


def _pid_of(d, cid: str) -> int:
    import docker
    client = docker.APIClient(base_url=d.host, version="1.45")
    try:
        return client.inspect_container(cid)["State"]["Pid"]
    finally:
        client.close()


def test_stop_kill_and_rm_leave_no_veth_or_rule(daemon, busybox):
    for how in ("stop", "kill", "rm"):
        daemon.cli("run", "-d", "--name", f"c{how}", "-p", "18476:80", "busybox", *HTTPD, check=True)
        if how == "rm":
            daemon.cli("rm", "-f", f"c{how}", check=True)
        else:
            daemon.cli(how, *(["-t", "0"] if how == "stop" else []), f"c{how}", check=True)
            assert until(lambda: not _inspect(daemon, f"c{how}")["State"]["Running"])
            daemon.cli("rm", f"c{how}", check=True)
        assert until(lambda: not [x for x in _berth_host_state(daemon.net.tag) if "18476" in x])
        assert until(lambda: not [x for x in _berth_host_state("berthv") if daemon.net.bridge in x])


# ------------------------------------------------------------------------------------------ clients

def test_docker_py_networks_ports_links_mac(docker_client, daemon, busybox):
    net = docker_client.networks.create("pynet1", labels={"k": "v"})
    try:
        assert docker_client.networks.get("pynet1").attrs["Labels"] == {"k": "v"}
        assert [n.name for n in docker_client.networks.list(names=["pynet1"])] == ["pynet1"]
        c = docker_client.containers.run("busybox", HTTPD, detach=True, name="py1", ports={"80/tcp": 18477},
                                         mac_address="02:42:ac:11:00:99")
        c.reload()
        assert c.attrs["NetworkSettings"]["MacAddress"] == "02:42:ac:11:00:99"
        assert c.ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18477"}]}
        assert docker_client.api.port(c.id, 80) == [{"HostIp": "0.0.0.0", "HostPort": "18477"}]
        assert until(lambda: _try(lambda: _http("127.0.0.1", 18477)) == c.id[:12], timeout=10)
        net.connect(c, aliases=["pyalias"])
        net.reload()
        assert c.id in net.attrs["Containers"]
        out = docker_client.containers.run("busybox", ["sh", "-c", "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' "
                                                       "| nc -w 2 pyalias 80"], network="pynet1", remove=True)
        assert out.decode().strip().endswith(c.id[:12])
        net.disconnect(c)
        linked = docker_client.containers.run("busybox", ["env"], links={"py1": "web"}, remove=True)
        assert b"WEB_NAME=/" in linked
    finally:
        for c in docker_client.containers.list(all=True):
            c.remove(force=True)
        net.remove()
    assert docker_client.networks.prune() == {"NetworksDeleted": None}


def test_docker_py_link_local_ips_and_bad_ones(docker_client, daemon, busybox):
    api = docker_client.api
    cfg = api.create_networking_config({"bridge": api.create_endpoint_config(link_local_ips=["169.254.8.8"])})
    c = api.create_container("busybox", ["ip", "-o", "-4", "addr", "show", "eth0"], networking_config=cfg,
                             host_config=api.create_host_config(network_mode="bridge"))
    try:
        api.start(c)
        assert api.inspect_container(c)["NetworkSettings"]["Networks"]["bridge"]["IPAMConfig"] == \
            {"LinkLocalIPs": ["169.254.8.8"]}
        api.wait(c)
        assert "inet 169.254.8.8/16" in api.logs(c).decode()
    finally:
        api.remove_container(c, force=True)
    before = len(api.containers(all=True))
    bad = api.create_networking_config({"bridge": api.create_endpoint_config(link_local_ips=["169.254.x"])})
    with pytest.raises(docker.errors.APIError, match="invalid link-local IP address: 169.254.x"):
        api.create_container("busybox", ["true"], networking_config=bad)
    assert len(api.containers(all=True)) == before


@needs_docker_cli
def test_docker_cli_network_and_port(daemon, busybox):
    r = docker_cli(daemon, "network", "create", "clinet1")
    assert r.returncode == 0, r.stderr
    try:
        r = docker_cli(daemon, "run", "-d", "--name", "cli1", "--network", "clinet1", "-p", "127.0.0.1:18478:80",
                       "busybox", *HTTPD)
        assert r.returncode == 0, r.stderr
        cid = r.stdout.strip()
        assert docker_cli(daemon, "port", "cli1").stdout == "80/tcp -> 127.0.0.1:18478\n"
        assert until(lambda: _try(lambda: _http("127.0.0.1", 18478)) == cid[:12], timeout=10)
        r = docker_cli(daemon, "ps", "--format", "{{.Ports}} {{.Networks}}")
        assert r.stdout.strip() == "127.0.0.1:18478->80/tcp clinet1"
        r = docker_cli(daemon, "network", "ls", "--format", "{{.Name}}")
        assert "clinet1" in r.stdout.split() and "bridge" in r.stdout.split()
        r = docker_cli(daemon, "network", "inspect", "clinet1", "-f", "{{range .Containers}}{{.Name}}{{end}}")
        assert r.stdout.strip() == "cli1"
    finally:
        docker_cli(daemon, "rm", "-f", "cli1")
        docker_cli(daemon, "network", "rm", "clinet1")
