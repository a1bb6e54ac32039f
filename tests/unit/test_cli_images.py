"""Tests for app.cli.images: the formatting rules of the image commands (no daemon needed).

Expected tables were checked against the docker 28.2.2 CLI talking to a canned API server.
"""
import io
import json

import pytest

from app.cli import images
from app.cli.client import APIError
from app.cli.images import (REFERENCE_RE, ellipsis, familiar, history_rows, image_rows,
                            jsonmessage_line, render_table, short_id, size3, split_tag, tabwrite)
from app.cli.main import build_parser

NOW = 1_700_000_000
H = lambda c: "sha256:" + c * 64  # noqa: E731


def img(char, tags=(), digests=(), created=NOW - 3 * 86400, size=4261574, **extra):
    return {"Id": H(char), "ParentId": "", "RepoTags": list(tags), "RepoDigests": list(digests),
            "Created": created, "Size": size, "SharedSize": -1, "Labels": None, "Containers": -1, **extra}


# ------------------------------------------------------------------------------------------ tabwriter

def test_tabwrite_pads_tab_terminated_cells_with_minwidth_and_padding():
    out = tabwrite("REPOSITORY\tTAG\tSIZE\nbusybox\tlatest\t4.26MB\nlocalhost:5000/a/b\tv1\t1B\n")
    assert out.split("\n") == [
        "REPOSITORY           TAG       SIZE",
        "busybox              latest    4.26MB",
        "localhost:5000/a/b   v1        1B",
        "",
    ]


def test_tabwrite_last_cell_is_not_aligned_and_empty_cells_are_padded():
    assert tabwrite("a\tb\t\nccc\td\t") == "a         b         \nccc       d         "


def test_tabwrite_columns_are_contiguous_blocks_like_go():
    text = "aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee"
    assert tabwrite(text, minwidth=0, padding=1).split("\n") == [
        "aaaa bbb d",
        "aa   b   dd",
        "a    ",
        "aa   cccc eee",
    ]


def test_tabwrite_counts_east_asian_wide_characters_as_two_columns():
    assert tabwrite("日本\tx\nab\ty", minwidth=0, padding=1) == "日本 x\nab   y"


# ------------------------------------------------------------------------------------------ formats

HEADERS = images.IMAGE_HEADERS


def test_table_format_prints_a_header_from_the_field_names():
    rows = [{"Repository": "busybox", "Tag": "latest"}, {"Repository": "alpine", "Tag": "3.19"}]
    out = render_table("table {{.Repository}}\\t{{.Tag}}", rows, HEADERS)
    assert out == "REPOSITORY   TAG\nbusybox      latest\nalpine       3.19\n"


def test_table_format_with_no_rows_still_prints_the_header():
    assert render_table(images.IMAGE_TABLE, [], HEADERS) == (
        "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n")


def test_plain_format_has_no_header_and_no_alignment():
    rows = [{"ID": "abc", "Repository": "busybox", "Tag": "latest"}]
    assert render_table("{{.ID}}: {{.Repository}}\\t{{.Tag}}", rows, HEADERS) == "abc: busybox\tlatest\n"


def test_json_format_is_one_object_per_row():
    rows = [{"ID": "abc", "Tag": "x"}, {"ID": "def", "Tag": "y"}]
    lines = render_table("json", rows, HEADERS).splitlines()
    assert [json.loads(line) for line in lines] == rows


def test_bad_template_is_a_command_error():
    from app.cli.main import CommandError
    with pytest.raises(CommandError, match="template parsing error"):
        render_table("{{.ID", [{"ID": "x"}], HEADERS)


# ------------------------------------------------------------------------------------------ images

def test_one_row_per_repo_tag_and_none_rows_for_untagged_images():
    rows = image_rows([img("a", ["busybox:latest", "busybox:1.36"]), img("b")], now=NOW)
    assert [(r["Repository"], r["Tag"], r["ID"]) for r in rows] == [
        ("busybox", "latest", "aaaaaaaaaaaa"),
        ("busybox", "1.36", "aaaaaaaaaaaa"),
        ("<none>", "<none>", "bbbbbbbbbbbb"),
    ]
    assert rows[0]["CreatedSince"] == "3 days ago"
    assert rows[0]["Size"] == "4.26MB"
    assert rows[2]["Digest"] == "<none>"


def test_legacy_none_tags_count_as_untagged():
    rows = image_rows([img("b", ["<none>:<none>"], ["<none>@<none>"])], now=NOW)
    assert [(r["Repository"], r["Tag"]) for r in rows] == [("<none>", "<none>")]


def test_no_trunc_shows_the_full_id():
    rows = image_rows([img("a", ["busybox:latest"])], trunc=False, now=NOW)
    assert rows[0]["ID"] == H("a")


def test_digests_one_row_per_digest_and_digest_only_references():
    data = [img("a", ["busybox:latest", "localhost:5000/a/b:v1"], ["busybox@sha256:" + "d" * 64]),
            img("c", [], ["docker.io/library/alpine@sha256:" + "e" * 64])]
    plain = image_rows(data, now=NOW)
    assert [(r["Repository"], r["Tag"], r["Digest"]) for r in plain] == [
        ("busybox", "latest", "<none>"), ("localhost:5000/a/b", "v1", "<none>"), ("alpine", "<none>", "")]
    shown = image_rows(data, digests=True, now=NOW)
    assert [(r["Repository"], r["Tag"], r["Digest"]) for r in shown] == [
        ("busybox", "latest", "sha256:" + "d" * 64), ("localhost:5000/a/b", "v1", "<none>"),
        ("alpine", "<none>", "sha256:" + "e" * 64)]


def test_default_images_table_matches_docker():
    data = [img("a", ["busybox:latest", "localhost:5000/a/b:v1"]),
            img("b", created=NOW - 7200, size=999500),
            img("f", ["docker.io/library/ubuntu:22.04"], created=NOW - 86400 * 400, size=77_800_000_000)]
    out = render_table(images.IMAGE_TABLE, image_rows(data, now=NOW), HEADERS)
    assert out == (
        "REPOSITORY           TAG       IMAGE ID       CREATED         SIZE\n"
        "busybox              latest    aaaaaaaaaaaa   3 days ago      4.26MB\n"
        "localhost:5000/a/b   v1        aaaaaaaaaaaa   3 days ago      4.26MB\n"
        "<none>               <none>    bbbbbbbbbbbb   2 hours ago     1e+03kB\n"
        "ubuntu               22.04     ffffffffffff   13 months ago   77.8GB\n")


def test_extra_image_fields():
    row = image_rows([img("a", ["x:1"], size=2000, SharedSize=500, Containers=3)], now=NOW)[0]
    assert (row["Containers"], row["SharedSize"], row["UniqueSize"], row["VirtualSize"]) == (
        "3", "500B", "1.5kB", "2kB")
    row = image_rows([img("a", ["x:1"])], now=NOW)[0]
    assert (row["Containers"], row["SharedSize"], row["UniqueSize"]) == ("N/A", "N/A", "N/A")


# ------------------------------------------------------------------------------------------ history

LAYERS = [
    {"Id": H("a"), "Created": NOW - 5 * 3600, "CreatedBy": '/bin/sh -c #(nop)  CMD ["sh"]',
     "Tags": ["busybox:latest"], "Size": 0, "Comment": ""},
    {"Id": "<missing>", "Created": NOW - 20 * 86400, "Size": 4261574, "Comment": "imported",
     "CreatedBy": "/bin/sh -c #(nop) ADD file:7e9002edaafd4e4579b65c8f0aaabde1aeb7fd3f in / "},
    {"Id": "<missing>", "Created": 100, "CreatedBy": "a\tb", "Size": 1234567, "Comment": ""},
]


def test_history_rows_truncate_and_humanize():
    rows = history_rows(LAYERS, now=NOW)
    assert [r["ID"] for r in rows] == ["aaaaaaaaaaaa", "<missing>", "<missing>"]
    assert rows[1]["CreatedBy"] == "/bin/sh -c #(nop) ADD file:7e9002edaafd4e457…"
    assert len(rows[1]["CreatedBy"]) == 45
    assert rows[2]["CreatedBy"] == "a b"                     # tabs would break the table
    assert [r["CreatedSince"] for r in rows] == ["5 hours ago", "2 weeks ago", "N/A"]
    assert [r["Size"] for r in rows] == ["0B", "4.26MB", "1.23MB"]


def test_history_no_trunc_and_not_human():
    rows = history_rows(LAYERS, trunc=False, human=False, now=NOW)
    assert rows[0]["ID"] == H("a")
    assert rows[1]["CreatedBy"] == LAYERS[1]["CreatedBy"]
    assert rows[1]["Size"] == "4261574"
    assert rows[1]["CreatedSince"] == rows[1]["CreatedAt"]
    assert rows[1]["CreatedAt"].startswith("2023-10-")


def test_history_table_matches_docker():
    out = render_table(images.HISTORY_TABLE, history_rows(LAYERS[:2], now=NOW), images.HISTORY_HEADERS)
    assert out == (
        "IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT\n"
        'aaaaaaaaaaaa   5 hours ago   /bin/sh -c #(nop)  CMD ["sh"]                   0B        \n'
        "<missing>      2 weeks ago   /bin/sh -c #(nop) ADD file:7e9002edaafd4e457…   4.26MB    imported\n")


# ------------------------------------------------------------------------------------------ small helpers

@pytest.mark.parametrize("ref, expected", [
    ("busybox", ("busybox", None)),
    ("busybox:1.36", ("busybox", "1.36")),
    ("localhost:5000/a/b", ("localhost:5000/a/b", None)),
    ("localhost:5000/a/b:v1", ("localhost:5000/a/b", "v1")),
    ("a/b:c/d", ("a/b:c/d", None)),
])
def test_split_tag(ref, expected):
    assert split_tag(ref) == expected


@pytest.mark.parametrize("ref, ok", [
    ("busybox", True), ("localhost:5000/a/b:v1", True), ("Foo.com:80/x/y:1_2", True),
    ("a__b/c--d:x", True), ("[::1]:5000/x", True), ("Foo", False), ("foo/Bar", False),
    ("a/b:", False), ("a:b:c", False), ("a/b/", False), ("x:-1", False), ("x:" + "t" * 129, False),
])
def test_reference_grammar(ref, ok):
    assert bool(REFERENCE_RE.fullmatch(ref)) is ok


def test_short_id_size_and_familiar_names():
    assert short_id(H("a")) == "a" * 12
    assert short_id("<missing>") == "<missing>"
    assert [size3(n) for n in (0, 999, 999500, 4261574, 1e12)] == ["0B", "999B", "1e+03kB", "4.26MB", "1TB"]
    assert familiar("docker.io/library/busybox") == "busybox"
    assert familiar("docker.io/foo/bar") == "foo/bar"
    assert familiar("docker.io/library/a/b") == "library/a/b"
    assert familiar("quay.io/x/y") == "quay.io/x/y"


def test_ellipsis_counts_display_width():
    assert ellipsis("abcdef", 6) == "abcdef"
    assert ellipsis("abcdefg", 6) == "abcde…"
    assert ellipsis("日本語日本語", 6) == "日本…"


def test_path_quoting_keeps_slash_colon_and_at():
    assert images._path("localhost:5000/a/b:tag") == "localhost:5000/a/b:tag"
    assert images._path("a b?#") == "a%20b%3F%23"
    assert images._path("busybox@sha256:ab") == "busybox@sha256:ab"


def test_jsonmessage_lines_without_a_terminal():
    assert jsonmessage_line({"stream": "Loaded image: busybox:latest\n"}) == "Loaded image: busybox:latest\n"
    assert jsonmessage_line({"status": "sha256:abc"}) == "sha256:abc\n"
    pulled = {"status": "Pull complete", "progressDetail": {}, "id": "a1b2"}
    assert jsonmessage_line(pulled) == "a1b2: Pull complete\n"
    assert jsonmessage_line({"status": "Downloading", "progressDetail": {"current": 1, "total": 2}}) is None
    assert jsonmessage_line({"aux": {"ID": "sha256:abc"}}) is None


# ------------------------------------------------------------------------------------------ commands

class FakeResponse(io.BytesIO):
    def __init__(self, data=b"", content_type="application/json"):
        super().__init__(data)
        self.content_type = content_type

    def getheader(self, name, default=None):
        return self.content_type if name.lower() == "content-type" else default


class FakeClient:
    def __init__(self, responses):
        self.responses, self.calls = responses, []

    def request(self, method, path, params=None, body=None, headers=None):
        self.calls.append((method, path, {k: v for k, v in (params or {}).items() if v is not None}))
        if body is not None and not isinstance(body, bytes):
            self.calls[-1] += (b"".join(body),)
        result = self.responses.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    def get_json(self, path, params=None):
        return json.loads(self.request("GET", path, params).read() or b"null")


def run(argv, responses):
    args = build_parser().parse_args(argv)
    client = FakeClient(list(responses))
    return args.func(args, client), client.calls


def test_images_query_and_unique_quiet_ids(capsys):
    data = json.dumps([img("a", ["busybox:latest", "busybox:1"]), img("b")]).encode()
    rc, calls = run(["images", "-q", "-a", "-f", "dangling=false", "busybox"], [FakeResponse(data)])
    assert rc == 0
    assert calls == [("GET", "/images/json", {
        "all": "1", "filters": '{"dangling":{"false":true},"reference":{"busybox":true}}'})]
    assert capsys.readouterr().out == "aaaaaaaaaaaa\nbbbbbbbbbbbb\n"


def test_tag_splits_the_target(capsys):
    rc, calls = run(["tag", "busybox", "localhost:5000/a/b"], [FakeResponse()])
    assert rc == 0
    assert calls == [("POST", "/images/busybox/tag", {"repo": "localhost:5000/a/b", "tag": "latest"})]
    rc, calls = run(["image", "tag", "a:1", "b:2"], [FakeResponse()])
    assert calls == [("POST", "/images/a:1/tag", {"repo": "b", "tag": "2"})]


def test_rmi_continues_after_errors_and_force_ignores_missing(capsys):
    deleted = FakeResponse(b'[{"Untagged":"busybox:latest"},{"Deleted":"sha256:abc"}]')
    rc, calls = run(["rmi", "nosuch", "busybox"], [APIError(404, "No such image: nosuch:latest"), deleted])
    out = capsys.readouterr()
    assert rc == 1 and len(calls) == 2
    assert out.out == "Untagged: busybox:latest\nDeleted: sha256:abc\n"
    assert out.err == "Error response from daemon: No such image: nosuch:latest\n"
    rc, calls = run(["image", "rm", "-f", "nosuch"], [APIError(404, "No such image: nosuch:latest")])
    assert rc == 0 and calls == [("DELETE", "/images/nosuch", {"force": "1"})]
    rc, _ = run(["rmi", "-f", "used"], [APIError(409, "conflict")])
    assert rc == 1


def test_inspect_tries_container_then_image_and_reports_missing(capsys):
    obj = {"Id": H("a"), "Size": 5}
    rc, calls = run(["inspect", "busybox", "nosuch"], [
        APIError(404, "No such container: busybox"), FakeResponse(json.dumps(obj).encode()),
        APIError(404, "No such container: nosuch"), APIError(404, "No such image: nosuch"),
        APIError(404, "get nosuch: no such volume")])
    out = capsys.readouterr()
    assert rc == 1
    assert [c[1] for c in calls] == ["/containers/busybox/json", "/images/busybox/json",
                                     "/containers/nosuch/json", "/images/nosuch/json", "/volumes/nosuch"]
    assert out.out == json.dumps([obj], indent=4) + "\n"
    assert out.err == "Error: No such object: nosuch\n"
    rc, calls = run(["image", "inspect", "-f", "{{.Size}}", "busybox"],
                    [FakeResponse(json.dumps(obj).encode())])
    assert rc == 0 and calls == [("GET", "/images/busybox/json", {})]
    assert capsys.readouterr().out == "5\n"


def test_load_streams_the_file_and_prints_stream_values(tmp_path, capsys):
    tar = tmp_path / "x.tar"
    tar.write_bytes(b"x" * (images.CHUNK + 10))
    stream = b'{"stream":"Loaded image: busybox:latest\\n"}\n'
    rc, calls = run(["load", "-i", str(tar)], [FakeResponse(stream)])
    assert rc == 0 and capsys.readouterr().out == "Loaded image: busybox:latest\n"
    assert calls[0][:3] == ("POST", "/images/load", {"quiet": "1"}) and len(calls[0][3]) == images.CHUNK + 10
    bad = b'{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}\n'
    rc, _ = run(["image", "load", "-i", str(tar)], [FakeResponse(bad)])
    assert rc == 1 and capsys.readouterr().err == "unexpected EOF\n"


def test_import_params(tmp_path, capsys):
    tar = tmp_path / "x.tar"
    tar.write_bytes(b"data")
    rc, calls = run(["import", "-c", "CMD [\"sh\"]", "-c", "ENV A=b", "-m", "hi", str(tar), "demo/imp:1"],
                    [FakeResponse(b'{"status":"sha256:abc"}\n')])
    assert rc == 0 and capsys.readouterr().out == "sha256:abc\n"
    params = {"fromSrc": "-", "message": "hi", "changes": ['CMD ["sh"]', "ENV A=b"],
              "repo": "demo/imp", "tag": "1"}
    assert calls == [("POST", "/images/create", params, b"data")]


def test_save_writes_atomically(tmp_path):
    target = tmp_path / "out.tar"
    rc, calls = run(["save", "-o", str(target), "a", "b:1"], [FakeResponse(b"TAR" * 10, "application/x-tar")])
    assert rc == 0 and target.read_bytes() == b"TAR" * 10
    assert calls == [("GET", "/images/get", {"names": ["a", "b:1"]})]
    assert [p.name for p in tmp_path.iterdir()] == ["out.tar"]


def test_history_human_flag_is_go_style():
    parse = build_parser().parse_args
    assert parse(["history", "-H=false", "x"]).human is False
    assert parse(["history", "--human=true", "x"]).human is True
    args = parse(["history", "-H", "busybox"])
    assert args.human is True and args.flag_arg == "busybox" and args.image is None
