import struct

from app.runtime.containers.logs import LogMessage, messages, parse_time_ns, render, select

T0 = "2026-11-27T19:32:45.000000001+00:00"
BASE = parse_time_ns(T0)

LOG = [
    b"2026-11-27T19:32:45.000000001+00:00 stdout F first\n",
    b"2026-11-27T19:32:45.000000002+00:00 stdout P par\n",
    b"2026-11-27T19:32:45.000000003+00:00 stderr F oops\n",
    b"2026-11-27T19:32:45.000000004+00:00 stdout P t-\n",
    b"2026-11-27T19:32:45.000000005+00:00 stdout F done\n",
    b"not a record\n",
    b"2026-11-27T19:32:46.000000000+00:00 stdout P no newline at exit\n",
]


def test_parse_time_is_nanosecond_exact():
    assert BASE == 1795807965 * 10**9 + 1
    assert parse_time_ns("2026-11-27T20:32:45.000000001+01:00") == BASE
    assert parse_time_ns("2026-11-27T19:32:45Z") == BASE - 1


def test_partials_are_joined_per_stream():
    got = [(m.stream, m.data, m.time_ns - BASE) for m in messages(LOG)]
    assert got == [("stdout", b"first\n", 0), ("stderr", b"oops\n", 2), ("stdout", b"part-done\n", 1),
                   ("stdout", b"no newline at exit", 999_999_999)]


def test_select_streams_window_and_tail():
    msgs = list(messages(LOG))
    assert [m.data for m in select(msgs, streams=("stderr",))] == [b"oops\n"]
    assert [m.data for m in select(msgs, tail=2)] == [b"part-done\n", b"no newline at exit"]
    assert select(msgs, tail=0) == []
    assert [m.data for m in select(msgs, since_ns=BASE + 1, until_ns=BASE + 2)] == [b"oops\n", b"part-done\n"]


def test_render_frames_and_timestamps():
    msg = LogMessage(BASE, "stderr", b"oops\n")
    assert render(msg, timestamps=False, tty=False) == struct.pack(">BxxxL", 2, 5) + b"oops\n"
    assert render(msg, timestamps=True, tty=True) == b"2026-11-27T19:32:45.000000001Z oops\n"


def test_follow_parses_only_whole_records_and_drains_after_stop(tmp_path):
    from app.runtime.containers.logs import follow
    path = tmp_path / "ctr.log"
    path.write_bytes(b"")
    state = {"running": True, "polls": 0}
    fh = open(path, "rb")
    writes = [b"2026-11-27T19:32:45.1+00:00 stdout F one\n2026-11-27T19:32:45.2+00:00 std",
              b"err F two\n", b"2026-11-27T19:32:45.3+00:00 stdout F three\n"]

    def still_running():
        state["polls"] += 1
        if writes:
            with open(path, "ab") as out:
                out.write(writes.pop(0))
        if not writes:
            was, state["running"] = state["running"], False
            return was
        return True

    out = list(follow(fh, still_running, ("stdout", "stderr"), poll=0))
    fh.close()
    assert out == [b"\x01\x00\x00\x00\x00\x00\x00\x04one\n", b"\x02\x00\x00\x00\x00\x00\x00\x04two\n",
                   b"\x01\x00\x00\x00\x00\x00\x00\x06three\n"]
