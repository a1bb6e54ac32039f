"""Marshmallow fields and a schema base that decode JSON the way moby's Go structs do.

moby decodes request bodies with Go's encoding/json into typed structs, and clients rely on what
that accepts and what it says when it refuses:
- a key matches its field case-insensitively; unknown keys are dropped; the last duplicate wins;
- `null` leaves a field at its zero value, for every type;
- a value of the wrong JSON kind is refused with
  `json: cannot unmarshal <kind> into Go struct field <Struct>.<Path> of type <type>`, where Struct is
  the innermost struct type and Path the field names from the top (moby adds `invalid JSON: `);
  a number that does not fit the integer type names the literal: `number 1e30`, `number -1`;
- strslice.StrSlice (Cmd, Entrypoint, Shell, CapAdd, CapDrop) takes a string or a list of strings.

The first wrong value stops decoding (GoTypeError is not a ValidationError, so marshmallow does not
collect it): the caller answers 400 with that one message, as moby does.
"""
from __future__ import annotations

import json

from marshmallow import EXCLUDE, Schema, fields, missing, pre_load


class GoNumber(float):
    """A JSON number that was written with a fraction or an exponent, keeping its literal text
    (Go names the literal when it does not fit an integer field)."""

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


class GoInt(int):
    """A JSON integer, keeping its literal text (`-0`, leading sign) for Go's messages."""

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


def parse_json(data: bytes | str):
    """json.loads with numbers that remember how they were written."""
    return json.loads(data, parse_float=GoNumber, parse_int=GoInt)


def json_kind(value) -> str:
    """The JSON kind as Go's decoder names it in a type error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def plain(value):
    """Strip the literal-keeping number types (stored and echoed as ordinary JSON numbers)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class GoTypeError(Exception):
    """A value Go's decoder would refuse. `path` and `struct` are filled in on the way out."""

    def __init__(self, value_text: str, go_type: str):
        super().__init__(value_text)
        self.value_text = value_text
        self.go_type = go_type
        self.path: list[str] = []
        self.struct: str | None = None

    @property
    def message(self) -> str:
        if self.struct or self.path:
            return (f"json: cannot unmarshal {self.value_text} into Go struct field "
                    f"{self.struct}.{'.'.join(self.path)} of type {self.go_type}")
        return f"json: cannot unmarshal {self.value_text} into Go value of type {self.go_type}"


def _mismatch(value, go_type: str) -> GoTypeError:
    return GoTypeError(json_kind(value), go_type)


class GoField(fields.Field):
    """Base: null is the zero value (kept as None, i.e. "not set"); errors get this field's name."""

    def __init__(self, go_type: str, **kwargs):
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)
        self.go_type = go_type

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is missing:
            return missing            # absent: left out of the result
        if value is None:
            return None
        try:
            return self.decode(value)
        except GoTypeError as err:
            err.path.insert(0, self.data_key or attr)
            if err.struct is None:
                err.struct = getattr(self.parent, "go_name", None) or type(self.parent).__name__
            raise

    def decode(self, value):
        raise NotImplementedError


class String(GoField):
    def __init__(self, go_type: str = "string", **kwargs):
        super().__init__(go_type, **kwargs)

    def decode(self, value):
        if not isinstance(value, str):
            raise _mismatch(value, self.go_type)
        return value


class Bool(GoField):
    def __init__(self, go_type: str = "bool", **kwargs):
        super().__init__(go_type, **kwargs)

    def decode(self, value):
        if not isinstance(value, bool):
            raise _mismatch(value, self.go_type)
        return value


_INT_KINDS = {"time.Duration": "int64", "os.FileMode": "uint32", "int": "int64", "uint": "uint64"}


class Int(GoField):
    """Go's signed and unsigned integer kinds: a JSON number written as an integer that fits."""

    def __init__(self, go_type: str = "int64", **kwargs):
        super().__init__(go_type, **kwargs)
        kind = _INT_KINDS.get(go_type, go_type)      # named integer types by their underlying kind
        unsigned = kind.startswith("uint")
        bits = int(kind.lstrip("uint") or 64)
        self.low = 0 if unsigned else -(1 << (bits - 1))
        self.high = (1 << bits) - 1 if unsigned else (1 << (bits - 1)) - 1

    def decode(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _mismatch(value, self.go_type)
        text = getattr(value, "text", None) or repr(value)
        if isinstance(value, float) or not self.low <= value <= self.high:
            raise GoTypeError(f"number {text}", self.go_type)
        return int(value)


class StrSlice(GoField):
    """strslice.StrSlice: a list of strings, or one string meaning a one-element list. Go reports the
    last attempt's failure: the value was not a string."""

    def __init__(self, **kwargs):
        super().__init__("string", **kwargs)

    def decode(self, value):
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise _mismatch(value, "string")


class List(GoField):
    """A Go slice ([]T) or, with `length`, an array ([N]T: extra elements dropped, missing ones zero)."""

    def __init__(self, inner: GoField, go_type: str | None = None, length: int | None = None, zero=None, **kwargs):
        super().__init__(go_type or f"[]{inner.go_type}", **kwargs)
        self.inner = inner
        self.length = length
        self.zero = zero

    def decode(self, value):
        if not isinstance(value, list):
            raise _mismatch(value, self.go_type)
        out = [self._element(v) for v in value]
        if self.length is not None:
            out = (out + [self.zero] * self.length)[:self.length]
        return out

    def _element(self, value):
        if value is None:
            return self.zero
        return self.inner.decode(value)


class Map(GoField):
    """map[string]T. Go reports a wrong element under the map's own field name."""

    def __init__(self, inner: GoField, go_type: str | None = None, **kwargs):
        super().__init__(go_type or f"map[string]{inner.go_type}", **kwargs)
        self.inner = inner

    def decode(self, value):
        if not isinstance(value, dict):
            raise _mismatch(value, self.go_type)
        return {k: (None if v is None else self.inner.decode(v)) for k, v in value.items()}


class Empty(GoField):
    """struct{} (the values of ExposedPorts and Volumes): any object, stored as {}."""

    def __init__(self, **kwargs):
        super().__init__("struct {}", **kwargs)

    def decode(self, value):
        if not isinstance(value, dict):
            raise _mismatch(value, self.go_type)
        return {}


class Struct(GoField):
    """A nested Go struct, decoded by its own GoSchema (errors keep the innermost struct's name)."""

    def __init__(self, schema: type["GoSchema"], go_type: str | None = None, **kwargs):
        super().__init__(go_type or schema.go_type, **kwargs)
        self.schema_class = schema

    def decode(self, value):
        if not isinstance(value, dict):
            raise _mismatch(value, self.go_type)
        return self.schema_class().load(value)


class GoSchema(Schema):
    """A Go struct. `go_name` is its type name in messages, `go_type` its qualified name."""

    go_name = "struct"
    go_type = "struct"

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _go_keys(self, data, **kwargs):
        """Rename keys to the fields' spelling, case-insensitively; unknown keys are dropped and a later
        duplicate (in any case) overrides an earlier one, as Go assigns fields in document order."""
        if not isinstance(data, dict):
            raise _mismatch(data, self.go_type)
        table = type(self).__dict__.get("_key_table")
        if table is None:
            table = {(f.data_key or name).lower(): (f.data_key or name) for name, f in self.load_fields.items()}
            type(self)._key_table = table
        out = {}
        for key, value in data.items():
            name = table.get(key.lower()) if isinstance(key, str) else None
            if name is not None:
                out[name] = value
        return out
