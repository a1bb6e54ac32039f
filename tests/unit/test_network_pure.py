"""Pure networking rules: address allocation, port specs, link variables, resolv.conf, ps PORTS."""
import ipaddress

import pytest

from app.cli.netopts import PortSpecError, displayable_ports, parse_port_spec
from app.errors import InvalidParameter
from app.runtime.network import etcfiles, ipam, links, ports


def test_pick_ip_is_sequential_skips_taken_and_wraps():
    net = ipaddress.ip_network("10.0.0.0/29")
    assert ipam.pick_ip(net, {"10.0.0.1"}) == "10.0.0.2"
    assert ipam.pick_ip(net, {"10.0.0.1"}, last="10.0.0.3") == "10.0.0.4"
    assert ipam.pick_ip(net, {"10.0.0.1", "10.0.0.2"}, last="10.0.0.6") == "10.0.0.3"
    with pytest.raises(InvalidParameter):
        ipam.pick_ip(net, {f"10.0.0.{i}" for i in range(1, 7)})


def test_pick_subnet_skips_overlaps_and_mac_from_ip():
    taken = [ipaddress.ip_network("172.17.0.0/16"), ipaddress.ip_network("172.18.5.0/24")]
    assert str(ipam.pick_subnet(ipam.DEFAULT_POOLS, taken)) == "172.19.0.0/16"
    assert ipam.parse_pool("base=10.10.0.0/16,size=24") == ("10.10.0.0/16", 24)
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def test_port_specs():
    assert parse_port_spec("8000:80") == [("80/tcp", "", "8000")]
    assert parse_port_spec("127.0.0.1::53/udp") == [("53/udp", "127.0.0.1", "")]
    assert parse_port_spec("8000-8001:80-81") == [("80/tcp", "", "8000"), ("81/tcp", "", "8001")]
    assert parse_port_spec("8000-8010:80") == [("80/tcp", "", "8000-8010")]
    for bad in ("abc", "1:2:3:4", "80/icmp", "70000:80", "8000-8002:80-81"):
        with pytest.raises(PortSpecError):
            parse_port_spec(bad)
    with pytest.raises(InvalidParameter):
        ports.validate({"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}, {})


def test_displayable_ports_groups_ranges():
    rows = [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8000, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 8001, "Type": "tcp"},
            {"PrivatePort": 443, "Type": "tcp"}]
    assert displayable_ports(rows) == "0.0.0.0:8000-8001->80-81/tcp, 443/tcp"


def test_link_env_names_as_docker():
    env = links.link_env("db", "web", "redis", "10.0.0.2", [(6379, "tcp")], ["PASS=x", "PATH=/bin"])
    assert "DB_NAME=/web/db" in env and "DB_PORT=tcp://10.0.0.2:6379" in env
    assert "DB_PORT_6379_TCP_ADDR=10.0.0.2" in env and "DB_ENV_PASS=x" in env
    assert not any(e.startswith("DB_ENV_PATH") for e in env)
    assert links.parse_link("/redis:/web/db") == ("redis", "db")


def test_resolv_drops_loopback_nameservers(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nsearch lan\noptions edns0\n")
    assert etcfiles.resolv_text({}, str(host)) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch lan\noptions edns0\n"
    assert etcfiles.resolv_text({}, str(host), network_mode="host").startswith("nameserver 127.0.0.53\n")
    assert etcfiles.resolv_text({"Dns": ["10.1.1.1"], "DnsSearch": ["x.test"]}, str(host)) == \
        "nameserver 10.1.1.1\nsearch x.test\noptions edns0\n"
