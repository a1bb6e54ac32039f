"""Query-string parsing shared by the blueprints, with marshmallow fields for Docker's value forms.

Every parse error becomes InvalidParameter (400) with a message naming the parameter.
"""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields

from app.common.filters import FilterError, parse_filters
from app.common.timeparse import TimeParseError, parse_timestamp
from app.errors import InvalidParameter

_TRUE = {"1", "true", "True", "TRUE", "yes"}
_FALSE = {"0", "false", "False", "FALSE", "no", ""}


class DockerBool(fields.Field):
    """`1/0`, `true/false`, `True/False` (docker-py sends `force=False`)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValidationError(f"invalid boolean value {value!r}")


class Timestamp(fields.Field):
    """since/until: Unix seconds with fraction, RFC 3339, or a relative duration → Unix nanoseconds."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_timestamp(value)
        except TimeParseError as err:
            raise ValidationError(str(err)) from err


class Filters(fields.Field):
    """The `filters` JSON, checked against the endpoint's allowed keys."""

    def __init__(self, allowed, **kwargs):
        super().__init__(**kwargs)
        self.allowed = allowed

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_filters(value, self.allowed)
        except FilterError as err:
            raise ValidationError(str(err)) from err


def load_query(schema: Schema, args) -> dict:
    """Validate request.args against `schema`; unknown parameters are ignored, as Docker does."""
    lists = {name for name, f in schema.load_fields.items() if isinstance(f, fields.List)}
    try:
        return schema.load({k: args.getlist(k) if k in lists else args.get(k) for k in args.keys()},
                           unknown="exclude")
    except ValidationError as err:
        name, problems = next(iter(err.messages.items()))
        detail = problems[0] if isinstance(problems, list) else problems
        if name == "filters":
            raise InvalidParameter(str(detail)) from err
        raise InvalidParameter(f"invalid value for {name!r}: {detail}") from err
