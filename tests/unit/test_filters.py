import pytest

from app.common.filters import FilterError, parse_filters, to_query
from app.events.filters import EVENT_FILTER_KEYS, EventFilter, strip_tag
from app.events.model import Event


def make(type_="container", action="start", actor="abcdef123456", **attrs):
    return Event(seq=1, time_nano=1, type=type_, action=action, actor_id=actor, attributes=attrs,
                 stream=f"{type_}:{actor}", version=1)


def test_both_wire_forms_parse_alike():
    assert parse_filters('{"type":{"container":true},"event":{"die":true}}', EVENT_FILTER_KEYS) == \
        parse_filters('{"type":["container"],"event":["die"]}', EVENT_FILTER_KEYS) == \
        {"type": {"container"}, "event": {"die"}}
    assert parse_filters(to_query({"label": ["a=b"]}), EVENT_FILTER_KEYS) == {"label": {"a=b"}}
    assert parse_filters("", EVENT_FILTER_KEYS) == {}
    assert parse_filters(None, EVENT_FILTER_KEYS) == {}


@pytest.mark.parametrize("raw,message", [
    ('{"bogus":["x"]}', "invalid filter 'bogus'"),
    ("not json", "is not valid JSON"),
    ('["type"]', "must be a JSON object"),
    ('{"type":5}', "neither a list nor an object"),
    ('{"type":{"container":"yes"}}', "values must map to true"),
])
def test_malformed_filters(raw, message):
    with pytest.raises(FilterError, match=message):
        parse_filters(raw, EVENT_FILTER_KEYS)


def test_keys_and_values_semantics():
    f = EventFilter({"type": {"container", "image"}, "event": {"start", "die"}})
    assert f.matches(make())
    assert f.matches(make(action="die"))
    assert not f.matches(make(action="stop"))
    assert not f.matches(make(type_="volume"))


def test_container_matches_id_prefix_or_name():
    assert EventFilter({"container": {"abc"}}).matches(make(name="web"))
    assert EventFilter({"container": {"web"}}).matches(make(name="web"))
    assert not EventFilter({"container": {"zzz"}}).matches(make(name="web"))
    assert not EventFilter({"container": {"abc"}}).matches(make(type_="volume", actor="abc"))


def test_image_matches_with_or_without_tag():
    ev = make(image="busybox:latest")
    assert EventFilter({"image": {"busybox"}}).matches(ev)
    assert EventFilter({"image": {"busybox:latest"}}).matches(ev)
    assert not EventFilter({"image": {"alpine"}}).matches(ev)
    img = make(type_="image", action="tag", actor="sha256:" + "a" * 64, name="docker.io/library/busybox:1")
    assert EventFilter({"image": {"busybox"}}).matches(img)
    assert EventFilter({"image": {"sha256:" + "a" * 64}}).matches(img)
    assert strip_tag("localhost:5000/a/b:tag") == "localhost:5000/a/b"
    assert strip_tag("busybox@sha256:" + "0" * 64) == "busybox"


def test_labels_must_all_match():
    ev = make(a="1", b="2")
    assert EventFilter({"label": {"a", "b=2"}}).matches(ev)
    assert not EventFilter({"label": {"a", "c"}}).matches(ev)
    assert not EventFilter({"label": {"a=2"}}).matches(ev)


def test_prefix_actions():
    ev = make(action="exec_start: sh -c true")
    assert EventFilter({"event": {"exec_start"}}).matches(ev)
    assert EventFilter({"event": {"exec_start"}}).sql_actions is None
    assert EventFilter({"event": {"die"}}).sql_actions == ["die"]


def test_daemon_and_volume_filters():
    d = make(type_="daemon", action="start", actor="engine-id", name="host")
    assert EventFilter({"daemon": {"host"}}).matches(d)
    assert EventFilter({"type": {"daemon"}}).matches(d)
    v = make(type_="volume", action="create", actor="data", driver="local")
    assert EventFilter({"volume": {"data"}}).matches(v)
    assert not EventFilter({"volume": {"other"}}).matches(v)
