"""Image commands (images, import, save, load, tag, rmi, history, inspect) as the docker CLI prints them.

The pure helpers (tabwrite, render_table, image_rows, history_rows, split_tag, …) carry the
formatting rules and are unit-tested; the cmd_* functions only talk HTTP and print.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import unicodedata
from datetime import datetime
from urllib.parse import quote

from app.cli.client import APIError, IncompleteRead, ProtocolError
from app.cli.system import filter_flags
from app.common.filters import to_query
from app.common.humanize import human_duration, human_size

CHUNK = 1 << 20                  # request bodies are streamed in 1 MiB chunks
EPOCH_2000 = 946684800           # docker history shows "N/A", not "… ago", for layers older than this
IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGE_TABLE_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGE_HEADERS = {"Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED",
                 "Digest": "DIGEST", "ID": "IMAGE ID", "Repository": "REPOSITORY",
                 "SharedSize": "SHARED SIZE", "Size": "SIZE", "Tag": "TAG", "UniqueSize": "UNIQUE SIZE",
                 "VirtualSize": "SIZE"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_TABLE_RAW = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"Comment": "COMMENT", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "CreatedSince": "CREATED", "ID": "IMAGE", "Size": "SIZE"}
# distribution/reference grammar: [HOST[:PORT]/]COMPONENT(/COMPONENT)*[:TAG]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])"
REFERENCE_RE = re.compile(rf"(?:{_HOST}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::\w[\w.-]{{0,127}})?")


# ------------------------------------------------------------------------------------------ formatting

def _char_width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(s: str) -> int:
    return sum(map(_char_width, s))


def ellipsis(s: str, width: int) -> str:
    """docker's formatter.Ellipsis: cut to `width` display columns, the last one being '…'."""
    if display_width(s) <= width:
        return s
    out, used = "", 0
    for ch in s:
        used += _char_width(ch)
        if used > width - 1:
            break
        out += ch
    return out + "…"


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-terminated cells like Go's text/tabwriter (docker: minwidth 10, padding 3, ' ').

    Elastic tabstops: a column is a run of consecutive lines that have a tab-terminated cell at
    that index; the text after a line's last tab is not aligned.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def emit(start: int, end: int, widths: list[int]) -> None:
        for cells in lines[start:end]:
            out.append("".join(c + " " * (widths[j] - display_width(c)) if j < len(widths) else c
                               for j, c in enumerate(cells)))

    def block(start: int, end: int, widths: list[int]) -> None:
        col, this = len(widths), start
        while this < end:
            if col >= len(lines[this]) - 1:
                this += 1
                continue
            emit(start, this, widths)
            first, width = this, minwidth
            while this < end and col < len(lines[this]) - 1:
                width = max(width, display_width(lines[this][col]) + padding)
                this += 1
            block(first, this, widths + [width])
            start = this
        emit(start, end, widths)

    block(0, len(lines), [])
    return "\n".join(out)


def _render(template: str, data) -> str:
    from app.cli.gotemplate import TemplateError, render
    try:
        return render(template, data)
    except TemplateError as err:
        from app.cli.main import CommandError
        raise CommandError(f"template parsing error: {err}") from err


_GO_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                                  "\u2029": "\\u2029"})


def render_table(fmt: str, rows: list[dict], headers: dict) -> str:
    """docker's formatter.Context: 'table …' gets a header row and tabwriter alignment,
    'json' is one JSON object per row, anything else is a plain per-row template."""
    is_table = fmt.startswith("table")
    body = fmt[len("table"):] if is_table else ("{{json .}}" if fmt == "json" else fmt)
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    text = "".join(_render(body, row) + "\n" for row in rows)
    if fmt == "json":       # the bare `json` keyword goes through Go's json.Marshal, which escapes HTML
        text = text.translate(_GO_HTML_ESCAPES)
    if is_table:
        return tabwrite(_render(body, headers) + "\n" + text)
    return text


def short_id(image_id: str) -> str:
    """stringid.TruncateID: drop the 'sha256:' algorithm prefix, keep 12 characters."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


def size3(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3), the SIZE column of images and history."""
    units, i = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"], 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def split_tag(ref: str) -> tuple[str, str | None]:
    """'localhost:5000/a/b:v1' → ('localhost:5000/a/b', 'v1'); no tag after the last '/' → None."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, None
    return name, tag


def familiar(name: str) -> str:
    """reference.FamiliarName: 'docker.io/library/busybox' → 'busybox', 'docker.io/a/b' → 'a/b'."""
    if name.startswith("docker.io/"):
        name = name[len("docker.io/"):]
        rest = name[len("library/"):]
        if name.startswith("library/") and "/" not in rest:
            name = rest
    return name


def _created_since(created: int, now: float) -> str:
    return human_duration(now - created) + " ago"


def image_rows(images: list[dict], trunc: bool = True, digests: bool = False,
               need_digest: bool | None = None, now: float | None = None) -> list[dict]:
    """The rows `docker images` prints: one per (repository, tag) — per digest too when digests
    are shown — digest-only references as '<none>' tags, untagged images as '<none>' '<none>'.
    `need_digest` (default: `digests`) is docker's "the format uses {{.Digest}}"."""
    now = time.time() if now is None else now
    need_digest = digests if need_digest is None else need_digest
    rows = []
    for img in images:
        tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        refs = [d for d in img.get("RepoDigests") or [] if d != "<none>@<none>"]
        triples: list[tuple[str, str, str]] = []
        if not tags and not refs:
            triples.append(("<none>", "<none>", "<none>"))
        else:
            repo_tags: dict[str, list[str]] = {}
            for ref in tags:
                repo, tag = split_tag(ref)
                if tag is not None:
                    repo_tags.setdefault(familiar(repo), []).append(tag)
            repo_digests: dict[str, list[str]] = {}
            for ref in refs:
                repo, _, dgst = ref.partition("@")
                if dgst:
                    repo_digests.setdefault(familiar(repo), []).append(dgst)
            for repo, repo_tag_list in repo_tags.items():
                dgsts = repo_digests.pop(repo, [])     # never a row of their own
                dgsts = dgsts if need_digest else []
                for tag in repo_tag_list:
                    triples += [(repo, tag, d) for d in dgsts] or [(repo, tag, "<none>")]
            for repo, dgsts in repo_digests.items():
                triples += [(repo, "<none>", d) for d in dgsts] if digests else [(repo, "<none>", "")]
        created, size, shared = img.get("Created") or 0, img.get("Size") or 0, img.get("SharedSize", -1)
        containers = img.get("Containers", -1)
        for repo, tag, dgst in triples:
            rows.append({
                "Containers": "N/A" if containers == -1 else str(containers),
                "CreatedAt": go_time_string(created),
                "CreatedSince": _created_since(created, now),
                "Digest": dgst,
                "ID": short_id(img.get("Id", "")) if trunc else img.get("Id", ""),
                "Repository": repo,
                "SharedSize": "N/A" if shared == -1 else human_size(shared),
                "Size": size3(size),
                "Tag": tag,
                "UniqueSize": "N/A" if shared == -1 or size == -1 else human_size(size - shared),
                "VirtualSize": human_size(size),
            })
    return rows


def go_time_string(ts: int) -> str:
    """Go's time.Unix(ts, 0).String() in local time: '2024-01-02 15:04:05 +0100 CET'."""
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def rfc3339(ts: int) -> str:
    """Go's time.Unix(ts, 0).Format(time.RFC3339) in local time ('Z' for UTC)."""
    s = datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def history_rows(layers: list[dict], trunc: bool = True, human: bool = True,
                 now: float | None = None) -> list[dict]:
    now = time.time() if now is None else now
    rows = []
    for layer in layers:
        created, size = layer.get("Created") or 0, layer.get("Size") or 0
        created_by = (layer.get("CreatedBy") or "").replace("\t", " ")
        if not human:
            since = rfc3339(created)
        else:
            since = _created_since(created, now) if created > EPOCH_2000 else "N/A"
        rows.append({
            "Comment": layer.get("Comment") or "",
            "CreatedAt": rfc3339(created),
            "CreatedBy": ellipsis(created_by, 45) if trunc else created_by,
            "CreatedSince": since,
            "ID": short_id(layer.get("Id", "")) if trunc else layer.get("Id", ""),
            "Size": size3(size) if human else str(size),
        })
    return rows


def jsonmessage_line(msg: dict) -> str | None:
    """The text docker prints for one progress-stream message without a terminal (None: nothing)."""
    if msg.get("aux") is not None:
        return None
    detail = msg.get("progressDetail") or {}
    if (detail.get("current") or 0) > 0 or (detail.get("total") or 0) > 0:
        return None                          # progress bars need a terminal
    prefix = f"{msg['id']}: " if msg.get("id") else ""
    prefix += f"(from {msg['from']}) " if msg.get("from") else ""
    if msg.get("stream"):
        return prefix + msg["stream"]
    return prefix + (msg.get("status") or "") + "\n"


# ------------------------------------------------------------------------------------------ plumbing

def _path(name: str) -> str:
    """An image name in a URL path: quoted, but '/', ':' and '@' left as they are."""
    return quote(name, safe="/:@")


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _os_error(err: OSError) -> str:
    text = (err.strerror or str(err))
    return f"open {err.filename}: {text[:1].lower()}{text[1:]}"


def _chunks(stream):
    while True:
        data = stream.read(CHUNK)
        if not data:
            return
        yield data


def _show_stream(resp, out=None) -> int:
    """Print a jsonmessage stream; on an error message print it to stderr and return 1."""
    out = out or sys.stdout
    while True:
        try:
            raw = resp.readline()
            msg = json.loads(raw) if raw.strip() else None
        except ProtocolError as err:
            return _fail(f"error reading the daemon's response: {err!r}")
        except ValueError:
            return _fail(f"invalid JSON in the daemon's progress stream: {raw[:80]!r}")
        if not raw:
            return 0
        if msg is None:
            continue
        if msg.get("errorDetail") or msg.get("error"):
            detail = msg.get("errorDetail") or {}
            out.flush()
            return _fail(detail.get("message") or msg.get("error") or "unknown error")
        text = jsonmessage_line(msg)
        if text:
            out.write(text)
            out.flush()


def _bool_words(value: str) -> bool | None:
    return {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}.get(value.lower())


class _GoBool(argparse.Action):
    """A Go-style bool flag: `-H`, `-H=false`, `--human=true`. In `-H IMAGE` the word that is not a
    bool is kept in `flag_arg` for the command to use as its positional argument."""

    def __call__(self, parser, namespace, value, option_string=None):
        parsed = True if value is None else _bool_words(value)
        if parsed is None:
            namespace.flag_arg, parsed = value, True
        setattr(namespace, self.dest, parsed)


# ------------------------------------------------------------------------------------------ commands


def cmd_images(args, client) -> int:
    filters = filter_flags(args.filter)
    if args.reference:
        filters.setdefault("reference", []).append(args.reference)
    params = {"all": "1" if args.all else None, "filters": to_query(filters) if filters else None}
    images = client.get_json("/images/json", params) or []
    fmt = args.format or "table"
    if args.quiet and fmt == "table":
        seen: dict[str, None] = {}
        for img in images:
            seen.setdefault(img.get("Id", "") if args.no_trunc else short_id(img.get("Id", "")))
        sys.stdout.write("".join(f"{i}\n" for i in seen))
        return 0
    if fmt == "table":
        fmt = IMAGE_TABLE_DIGESTS if args.digests else IMAGE_TABLE
    elif fmt.startswith("table") and args.digests and "{{.Digest}}" not in fmt:
        fmt += "\t{{.Digest}}"
    rows = image_rows(images, trunc=not args.no_trunc, digests=args.digests,
                      need_digest=args.digests or "{{.Digest}}" in fmt)
    sys.stdout.write(render_table(fmt, rows, IMAGE_HEADERS))
    return 0


def cmd_import(args, client) -> int:
    params: dict = {"fromSrc": "-", "message": args.message or None, "changes": args.change or None}
    if args.reference:
        if not REFERENCE_RE.fullmatch(args.reference):
            return _fail("invalid reference format")
        params["repo"], params["tag"] = split_tag(args.reference)
    body, stream = None, None
    if args.source.startswith(("http://", "https://")):
        params["fromSrc"] = args.source
    elif args.source == "-":
        body = _chunks(sys.stdin.buffer)
    else:
        try:
            stream = open(args.source, "rb")
        except OSError as err:
            return _fail(_os_error(err))
        body = _chunks(stream)
    try:
        headers = {"Content-Type": "application/x-tar"} if body is not None else None
        resp = client.request("POST", "/images/create", params, body=body, headers=headers)
        return _show_stream(resp)
    finally:
        if stream:
            stream.close()


def cmd_save(args, client) -> int:
    if not args.output and sys.stdout.isatty():
        return _fail("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    directory = (os.path.dirname(os.path.normpath(args.output)) or ".") if args.output else None
    if directory and not os.path.exists(directory):
        return _fail(f"failed to save image: invalid output path: stat {directory}: "
                     "no such file or directory")
    resp = client.request("GET", "/images/get", {"names": args.images})
    tmp = None                       # -o: write to a temporary file beside the target, then rename
    try:
        if args.output:
            import tempfile
            fd, tmp = tempfile.mkstemp(prefix=".berth_temp_", dir=directory)
            out = os.fdopen(fd, "wb")
        else:
            out = sys.stdout.buffer
        for data in _chunks(resp):
            out.write(data)
        if getattr(resp, "length", None):    # read(n) just stops when the daemon hangs up early
            raise IncompleteRead(resp.length)
        out.flush()
        if tmp:
            out.close()
            os.replace(tmp, args.output)
            tmp = None
    except BrokenPipeError:
        raise
    except (ProtocolError, OSError) as err:
        reason = "unexpected EOF" if isinstance(err, IncompleteRead) else err
        return _fail(f"failed to save image: {reason}")
    finally:
        if tmp:
            out.close()
            os.unlink(tmp)
    return 0


def cmd_load(args, client) -> int:
    if args.input:
        try:
            stream = open(args.input, "rb")
        except OSError as err:
            return _fail(_os_error(err))
    elif sys.stdin.isatty():
        return _fail("requested load from stdin, but stdin is empty")
    else:
        stream = sys.stdin.buffer
    quiet = args.quiet or not sys.stdout.isatty()
    try:
        resp = client.request("POST", "/images/load", {"quiet": "1" if quiet else "0"},
                              body=_chunks(stream), headers={"Content-Type": "application/x-tar"})
        if (resp.getheader("Content-Type") or "").startswith("application/json"):
            return _show_stream(resp)
        sys.stdout.buffer.write(resp.read())
        return 0
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def cmd_tag(args, client) -> int:
    if "@" in args.target:
        return _fail("refusing to create a tag with a digest reference")
    if not REFERENCE_RE.fullmatch(args.target):
        return _fail(f'Error parsing reference: "{args.target}" is not a valid repository/tag: '
                     "invalid reference format")
    repo, tag = split_tag(args.target)
    client.request("POST", f"/images/{_path(args.source)}/tag", {"repo": repo, "tag": tag or "latest"}).read()
    return 0


def cmd_rmi(args, client) -> int:
    errors, fatal = [], False
    params = {"force": "1" if args.force else None, "noprune": "1" if args.no_prune else None}
    for name in args.images:
        try:
            resp = client.request("DELETE", f"/images/{_path(name)}", params)
            deleted = json.loads(resp.read() or b"[]") or []
        except APIError as err:
            fatal = fatal or err.status != 404
            errors.append(f"Error response from daemon: {err.message}")
            continue
        for item in deleted:
            deleted_id = item.get("Deleted")
            print(f"Deleted: {deleted_id}" if deleted_id else f"Untagged: {item.get('Untagged')}")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        # like docker: with -f, images that do not exist are not a failure
        return 1 if fatal or not args.force else 0
    return 0


def cmd_history(args, client) -> int:
    names = [n for n in (getattr(args, "flag_arg", None), args.image) if n]
    if len(names) != 1:
        from app.cli.main import CommandError
        raise CommandError('"history" requires exactly 1 argument')
    layers = client.get_json(f"/images/{_path(names[0])}/history") or []
    fmt = args.format or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if args.quiet else (HISTORY_TABLE if args.human else HISTORY_TABLE_RAW)
    rows = history_rows(layers, trunc=not args.no_trunc, human=args.human)
    sys.stdout.write(render_table(fmt, rows, HISTORY_HEADERS))
    return 0


def _inspect_one(client, name: str, kind: str | None, size: bool):
    """(object, None) or (None, error line). Without --type docker tries a container, then an
    image, moving on only on 404; with a type the daemon's message is reported as it is."""
    for k in [kind] if kind else ["container", "image", "volume"]:
        path = {"container": f"/containers/{_path(name)}/json", "image": f"/images/{_path(name)}/json",
                "volume": f"/volumes/{_path(name)}"}[k]
        try:
            return client.get_json(path, {"size": "1"} if size and k == "container" else None), None
        except APIError as err:
            if kind or err.status != 404:
                return None, f"Error response from daemon: {err.message}"
    return None, f"Error: No such object: {name}"


_MOUNT_FIELDS = ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")


def _mount_structs(obj):
    """A container's Mounts as moby's types.MountPoint structs (every field, in order) for templates."""
    if isinstance(obj, dict) and isinstance(obj.get("Mounts"), list):
        from app.cli.gotemplate import GoStruct
        blank = {"RW": False}
        obj = {**obj, "Mounts": [GoStruct((f, m.get(f, blank.get(f, ""))) for f in _MOUNT_FIELDS)
                                 if isinstance(m, dict) else m for m in obj["Mounts"]]}
    return obj


def cmd_inspect(args, client) -> int:
    found, errors = [], []
    for name in args.names:
        obj, error = _inspect_one(client, name, args.type, args.size)
        if error:
            errors.append(error)
        else:
            found.append(obj)
    if args.format == "json":
        print(json.dumps(found, ensure_ascii=False, separators=(",", ":")))
    elif args.format:
        sys.stdout.write("".join(_render(args.format, _mount_structs(obj)) + "\n" for obj in found))
    else:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------------ wiring

_FORMAT_HELP = "format output using a Go template ('table …', 'json')"


def _arguments(name: str, p, top: bool) -> None:
    """The flags of one command (`top`: the top-level spelling rather than `image NAME`)."""
    def flag(*names: str, text: str) -> None:
        p.add_argument(*names, action="store_true", help=text)

    if name == "images":
        flag("-a", "--all", text="show all images (default hides intermediate images)")
        flag("-q", "--quiet", text="only show image IDs")
        flag("--no-trunc", text="don't truncate output")
        flag("--digests", text="show digests")
        p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                       help="filter output (dangling, label, before, since, reference, until)")
        p.add_argument("--format", help=_FORMAT_HELP)
        p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    elif name == "import":
        p.add_argument("-c", "--change", action="append", default=[], help="apply a Dockerfile instruction")
        p.add_argument("-m", "--message", help="set the commit message for the imported image")
        p.add_argument("source", metavar="FILE|URL|-")
        p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    elif name == "save":
        p.add_argument("-o", "--output", help="write to a file instead of STDOUT")
        p.add_argument("images", nargs="+", metavar="IMAGE")
    elif name == "load":
        p.add_argument("-i", "--input", help="read from a tar archive file instead of STDIN")
        flag("-q", "--quiet", text="suppress the load output")
    elif name == "tag":
        p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
        p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    elif name == "rmi":
        flag("-f", "--force", text="force removal of the image")
        flag("--no-prune", text="do not delete untagged parents")
        p.add_argument("images", nargs="+", metavar="IMAGE")
    elif name == "history":
        p.add_argument("-H", "--human", action=_GoBool, nargs="?", default=True, metavar="true|false",
                       help="print sizes and dates in human readable format (default true)")
        flag("--no-trunc", text="don't truncate output")
        flag("-q", "--quiet", text="only show image IDs")
        p.add_argument("--format", help=_FORMAT_HELP)
        p.add_argument("image", nargs="?", metavar="IMAGE")
    elif name == "inspect":
        p.add_argument("-f", "--format", help="format output using a Go template")
        if top:
            p.add_argument("--type", choices=("container", "image", "volume"), help="only inspect objects of this type")
            flag("-s", "--size", text="display total file sizes (containers)")
        else:
            p.set_defaults(type="image", size=False)
        p.add_argument("names", nargs="+", metavar="NAME")


# (top-level name, `image` subcommand and its aliases, help, function)
COMMANDS = (
    ("images", ("ls", "list"), "list images", cmd_images),
    ("import", ("import",), "import a tarball to create a filesystem image", cmd_import),
    ("save", ("save",), "save images to a tar archive (streamed to STDOUT by default)", cmd_save),
    ("load", ("load",), "load an image from a tar archive or STDIN", cmd_load),
    ("tag", ("tag",), "create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", cmd_tag),
    ("rmi", ("rm", "remove"), "remove one or more images", cmd_rmi),
    ("history", ("history",), "show the history of an image", cmd_history),
    ("inspect", ("inspect",), "display detailed information on images (or containers)", cmd_inspect),
)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def register(sub) -> None:
    for name, _, text, func in COMMANDS:
        p = sub.add_parser(name, help=text, description=_sentence(text))
        _arguments(name, p, True)
        p.set_defaults(func=func, needs_client=True)
    group = sub.add_parser("image", help="manage images", description="Manage images.")
    group.set_defaults(func=lambda args: group.print_help() or 0, needs_client=False)
    image_sub = group.add_subparsers(dest="image_command", metavar="COMMAND")
    for name, (sub_name, *aliases), text, func in COMMANDS:
        p = image_sub.add_parser(sub_name, aliases=aliases, help=text, description=_sentence(text))
        _arguments(name, p, False)
        p.set_defaults(func=func, needs_client=True)
