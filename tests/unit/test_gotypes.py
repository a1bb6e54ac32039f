"""Create bodies decoded as moby's Go structs: types, messages, key matching, null (app/api/schemas)."""
import json

import pytest

from app.api.schemas import MAX_JSON_DEPTH, decode, parse_body, read_body
from app.api.schemas.container_create import CreateRequest
from app.errors import InvalidParameter, PayloadTooLarge


def load(body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return decode(CreateRequest(), parse_body(raw))


def refused(body) -> str:
    with pytest.raises(InvalidParameter) as err:
        load(body)
    return err.value.message


PREFIX = "invalid JSON: json: cannot unmarshal "


@pytest.mark.parametrize("body, message", [
    ({"Image": "b", "Cmd": 5}, "number into Go struct field CreateRequest.Cmd of type string"),
    ({"Image": "b", "Cmd": ["a", 1]}, "array into Go struct field CreateRequest.Cmd of type string"),
    ({"Image": "b", "Labels": ["a"]}, "array into Go struct field CreateRequest.Labels of type map[string]string"),
    ({"Image": "b", "Labels": {"a": 1}}, "number into Go struct field CreateRequest.Labels of type string"),
    ({"Image": "b", "HostConfig": "x"}, "string into Go struct field CreateRequest.HostConfig of type "
                                        "container.HostConfig"),
    ({"Image": "b", "HostConfig": {"Memory": "abc"}},
     "string into Go struct field HostConfig.HostConfig.Memory of type int64"),
    (b'{"Image":"b","HostConfig":{"Memory":1e30}}',
     "number 1e30 into Go struct field HostConfig.HostConfig.Memory of type int64"),
    (b'{"Image":"b","HostConfig":{"Memory":1.0}}',
     "number 1.0 into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"Image": "b", "HostConfig": {"Memory": 1 << 63}},
     f"number {1 << 63} into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"Image": "b", "HostConfig": {"BlkioWeight": 70000}},
     "number 70000 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16"),
    ({"Image": "b", "HostConfig": {"ConsoleSize": [-1, 0]}},
     "number -1 into Go struct field HostConfig.HostConfig.ConsoleSize of type uint"),
    ({"Image": "b", "HostConfig": {"ConsoleSize": ["a", "b"]}},
     "string into Go struct field HostConfig.HostConfig.ConsoleSize of type uint"),
    ({"Image": "b", "Env": {"a": 1}}, "object into Go struct field CreateRequest.Env of type []string"),
    ({"Image": "b", "Env": ["A=1", 2]}, "number into Go struct field CreateRequest.Env of type string"),
    ({"Image": "b", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "x"}]}},
     "string into Go struct field Ulimit.HostConfig.Ulimits.Soft of type int64"),
    ({"Image": "b", "Tty": "yes"}, "string into Go struct field CreateRequest.Tty of type bool"),
    ({"Image": "b", "Tty": 1}, "number into Go struct field CreateRequest.Tty of type bool"),
    ({"Image": "b", "StopTimeout": True}, "bool into Go struct field CreateRequest.StopTimeout of type int"),
    ({"Image": "b", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}},
     "number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string"),
    ({"Image": "b", "HostConfig": {"RestartPolicy": {"Name": 1}}},
     "number into Go struct field RestartPolicy.HostConfig.RestartPolicy.Name of type container.RestartPolicyMode"),
    ({"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"x": {"Aliases": "a"}}}},
     "string into Go struct field EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases of type []string"),
    ([], "array into Go value of type container.CreateRequest"),
    ("x", "string into Go value of type container.CreateRequest"),
])
def test_wrong_types_get_gos_message(body, message):
    assert refused(body) == PREFIX + message


def test_keys_match_any_case_unknown_ones_are_dropped_and_the_last_duplicate_wins():
    got = load(b'{"image":"b","cmd":["x"],"CMD":"y","NoSuchKey":{"deep":[1]},"hostconfig":{"memory":7,"MEMORY":8}}')
    assert got == {"Image": "b", "Cmd": ["y"], "HostConfig": {"Memory": 8}}


def test_null_is_the_zero_value_and_strslice_takes_a_string():
    got = load({"Image": "b", "Cmd": None, "Entrypoint": "sh", "HostConfig": {"CapAdd": "NET_ADMIN", "Memory": None,
                                                                               "ConsoleSize": [24]}})
    assert got == {"Image": "b", "Cmd": None, "Entrypoint": ["sh"],
                   "HostConfig": {"CapAdd": ["NET_ADMIN"], "Memory": None, "ConsoleSize": [24, 0]}}


def test_struct_values_become_empty_objects_and_numbers_plain_ints():
    got = load({"Image": "b", "ExposedPorts": {"80/tcp": {"junk": [1, 2]}}, "StopTimeout": 3})
    assert got["ExposedPorts"] == {"80/tcp": {}} and type(got["StopTimeout"]) is int


@pytest.mark.parametrize("raw, message", [
    (b"", "invalid JSON: got EOF while reading request body"),
    (b"   ", "invalid JSON: got EOF while reading request body"),
    (b'{"Image":', "invalid JSON: unexpected EOF"),
    (b'{"Image":"b"} trailing', "unexpected content after JSON"),
    (b'{"Image": x}', "invalid JSON: invalid character 'x' looking for beginning of value"),
])
def test_syntax_errors(raw, message):
    assert refused(raw) == message


def test_deep_nesting_is_refused_before_parsing_even_in_unknown_keys():
    for raw in (b"[" * 100_000, b'{"Unknown":' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b"}"):
        assert refused(raw) == f"invalid JSON: nesting deeper than {MAX_JSON_DEPTH} levels"
    # brackets inside strings are not nesting
    assert load({"Image": "b", "Env": ["A=" + "[" * 5000]})["Env"] == ["A=" + "[" * 5000]


class _Stream:
    def __init__(self, data):
        self.data, self.asked = data, []

    def read(self, n=-1):
        self.asked.append(n)
        n = len(self.data) if n < 0 else n
        out, self.data = self.data[:n], self.data[n:]
        return out


def test_body_size_bound_reads_no_more_than_limit_plus_one():
    stream = _Stream(b"x" * (1 << 20))
    with pytest.raises(PayloadTooLarge):
        read_body({}, stream, 100)
    assert stream.asked[0] == 101               # then a bounded drain of what follows
    assert len(stream.data) == (1 << 20) - 101 - (256 << 10)
    with pytest.raises(PayloadTooLarge):                      # a declared length is refused unread
        read_body({"CONTENT_LENGTH": "5000"}, _Stream(b""), 100)
    assert read_body({"CONTENT_LENGTH": "3"}, _Stream(b"abc"), 100) == b"abc"
