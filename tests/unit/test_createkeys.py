"""Every create key is applied, refused or ignored by design — the table in app/runtime/createkeys.py,
the schema (app/api/schemas/container_create.py) and docs/architecture.md "Request validation" agree,
and a refused key with a value berth would not apply is refused by name."""
import os
import re

import pytest

from app.api.schemas import gotypes
from app.api.schemas.container_create import Config, HostConfig, NetworkingConfig
from app.errors import InvalidParameter
from app.runtime.containers.createkeys import (APPLIED, CONFIG, HOST_CONFIG, IGNORED, NETWORKING_CONFIG, REFUSED, SECTIONS,
                                    is_zero, is_zero_struct, refuse_unapplied)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = {"Config": Config, "HostConfig": HostConfig, "NetworkingConfig": NetworkingConfig}


def schema_keys(schema) -> set[str]:
    return {f.data_key or name for name, f in schema().load_fields.items()}


@pytest.mark.parametrize("section, table", SECTIONS)
def test_every_schema_key_has_exactly_one_entry(section, table):
    assert set(table) == schema_keys(SCHEMAS[section])
    assert all(k.status in (APPLIED, REFUSED, IGNORED) and k.note for k in table.values())


def test_the_architecture_table_is_the_code_table():
    with open(os.path.join(ROOT, "docs", "architecture.md")) as fh:
        text = fh.read()
    section = text.split("## Request validation", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| (applied|refused|ignored) \| (.+?) \|$", section, re.M)
    documented = {(s, k): (status, note) for s, k, status, note in rows}
    expected = {(s, k): (v.status, v.note) for s, table in SECTIONS for k, v in table.items()}
    assert documented == expected


def sample(field):
    """A non-zero value of the field's Go type."""
    if isinstance(field, gotypes.Struct):
        name, inner = next(iter(field.schema_class().load_fields.items()))
        return {inner.data_key or name: sample(inner)}
    if isinstance(field, gotypes.Map):
        return {"k": sample(field.inner)}
    if isinstance(field, gotypes.List):
        return [sample(field.inner)]
    return {gotypes.String: "x", gotypes.Bool: True, gotypes.Int: 7, gotypes.StrSlice: ["x"],
            gotypes.Empty: {}}[type(field)]


REFUSED_KEYS = [(s, k) for s, table in SECTIONS for k, v in table.items() if v.status == REFUSED]


@pytest.mark.parametrize("section, key", REFUSED_KEYS)
def test_a_refused_key_is_refused_by_name_with_a_value_and_passes_with_its_zero(section, key):
    field = next(f for n, f in SCHEMAS[section]().load_fields.items() if (f.data_key or n) == key)
    value = sample(field)
    parts = {"Config": {}, "HostConfig": {}, "NetworkingConfig": {}}
    parts[section][key] = value
    with pytest.raises(InvalidParameter) as err:
        refuse_unapplied(parts["Config"], parts["HostConfig"], parts["NetworkingConfig"])
    table = dict(SECTIONS)[section]
    assert err.value.message == (table[key].message or f"berth does not support {section}.{key} yet")
    for zero in (None, "", 0, False, [], {}):
        parts[section][key] = zero
        refuse_unapplied(parts["Config"], parts["HostConfig"], parts["NetworkingConfig"])


def test_the_defaults_refused_keys_still_take():
    refuse_unapplied({"Healthcheck": {"Test": ["NONE"]}},
                     {"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "IpcMode": "private",
                      "UsernsMode": "host", "Runtime": "runc", "Isolation": "default", "MemorySwappiness": -1,
                      "CgroupnsMode": "host", "VolumeDriver": "local"}, {})
    for host_config in ({"IpcMode": "host"}, {"Runtime": "crun"}):
        with pytest.raises(InvalidParameter, match="berth does not support HostConfig"):
            refuse_unapplied({}, host_config, {})
    with pytest.raises(InvalidParameter, match="HostConfig.LogConfig.Config"):
        refuse_unapplied({}, {"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}}, {})


def test_what_the_docker_cli_sends_for_a_plain_run_passes():
    """docker 28's body for `docker run busybox` (shared/docker-api/NOTES.md) — zero values throughout."""
    endpoint = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
                "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "DNSNames": None}
    host_config = {"Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": None},
                   "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                   "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [24, 80],
                   "CapAdd": None, "CapDrop": None, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [],
                   "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None,
                   "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
                   "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 0,
                   "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
                   "BlkioWeight": 0, "BlkioWeightDevice": [], "Devices": [], "MemorySwappiness": None,
                   "OomKillDisable": False, "PidsLimit": None, "Ulimits": [], "MaskedPaths": None,
                   "ReadonlyPaths": None}
    refuse_unapplied({"Hostname": "", "Volumes": {}, "Labels": {}, "OnBuild": None, "Healthcheck": None},
                     host_config, {"EndpointsConfig": {"default": endpoint}})


def test_is_zero():
    assert all(is_zero(v) for v in (None, "", 0, False, [], {}))
    assert not any(is_zero(v) for v in ("x", 1, -1, True, [0], {"a": 1}, {"/data": {}}))
    assert is_zero_struct({"a": {"b": None, "c": []}}) and not is_zero_struct({"a": {"b": 1}})
