"""`cp`: copy between a container and the local file system, with the docker CLI's rules
(cli/command/container/cp.go and moby's pkg/archive/copy.go): a directory is copied into an existing
directory or becomes the new name; `SRC/.` copies a directory's contents; a file onto `DEST/` needs
DEST to be a directory; `-` is a tar on stdin or stdout."""
from __future__ import annotations

import base64
import json
import os
import posixpath
import stat as stat_mod
import sys
import tarfile
import threading
from urllib.parse import quote

from app.cli.client import APIError

GO_DIR, GO_SYMLINK = 1 << 31, 1 << 27


def register(sub) -> None:
    p = sub.add_parser("cp", help="copy files/folders between a container and the local filesystem")
    p.add_argument("-a", "--archive", action="store_true", help="archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress progress output during copy")
    p.add_argument("src")
    p.add_argument("dest")
    p.set_defaults(func=cmd_cp)


# The docker CLI's progress line (cli/command/container/cp.go, v28): drawn on stderr when it is a
# terminal, redrawn every 75 ms with the bytes of tar transferred so far, erased at the end.
SAVE, RESTORE, ERASE_LINE, ERASE_TAIL, HIDE, SHOW = "\x1b7", "\x1b8", "\x1b[2K", "\x1b[0K", "\x1b[?25l", "\x1b[?25h"
TO_HEADER, FROM_HEADER = "Copying to container - ", "Copying from container - "
PROGRESS_SECONDS = 0.075


class Counted:
    """A reader that counts the bytes read through it (the tar stream, as the docker CLI counts)."""

    def __init__(self, raw):
        self.raw = raw
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.total += len(data)
        return data

    def read1(self, n: int = -1) -> bytes:
        data = self.raw.read1(n) if hasattr(self.raw, "read1") else self.raw.read(n)
        self.total += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


class Progress:
    """`with Progress(err, header, counted):` draws the line while the copy runs (a terminal only)."""

    def __init__(self, out, header: str, counted: Counted):
        self.out, self.header, self.counted = out, header, counted
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if not self.out.isatty():
            return self
        self.out.write(SAVE + "Preparing to copy...")
        self.out.flush()
        self._thread = threading.Thread(target=self._draw, daemon=True)
        self._thread.start()
        return self

    def _draw(self) -> None:
        out = self.out
        out.write(HIDE + RESTORE + ERASE_LINE + self.header + human_size(0))
        out.flush()
        last = 0
        while not self._stop.wait(PROGRESS_SECONDS):
            n = self.counted.total
            if n != last:
                out.write(f"\x1b[{len(self.header) + 1}G" + ERASE_TAIL + human_size(n))
                out.flush()
                last = n
        out.write(SHOW)

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.out.write(RESTORE + ERASE_LINE)
            self.out.flush()


def human_size(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3): decimal units, three significant digits."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g}{units[i]}"


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def split_arg(arg: str) -> tuple[str, str]:
    """("container", path) or ("", local path), as the docker CLI's splitCpArg."""
    if os.path.isabs(arg) or arg.startswith("."):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep:
        return "", arg
    return container, path


def _ends_dir(path: str) -> bool:
    return path.endswith("/") or path.endswith("/.") or path == "."


def _contents(path: str) -> bool:
    return path.endswith("/.") or path == "."


def _stat(client, container: str, path: str) -> dict:
    resp = client.request("HEAD", f"/containers/{quote(container)}/archive", {"path": path})
    resp.read()
    return json.loads(base64.b64decode(resp.getheader("X-Docker-Container-Path-Stat") or "e30="))


def cmd_cp(args, client) -> int:
    src_c, src = split_arg(args.src)
    dst_c, dst = split_arg(args.dest)
    if src_c and dst_c:
        return _fail("copying between containers is not supported")
    if not src_c and not dst_c:
        return _fail("must specify at least one container source")
    if not (src if src_c else dst):
        return _fail("filepath cannot be empty")
    quiet = args.quiet or not sys.stdout.isatty()     # the docker CLI's default: quiet without a terminal
    if src_c:
        return _from_container(client, src_c, src, dst, args.follow_link, quiet)
    return _to_container(client, src, dst_c, dst, args.archive, args.follow_link, quiet)


# ------------------------------------------------------------------------------------------ from

def _from_container(client, container: str, src: str, dst: str, follow: bool, quiet: bool) -> int:
    if not src.startswith("/"):
        src = "/" + src
    rebase = None
    if follow:          # as the docker CLI: a HEAD only to follow a link, else the GET's own stat
        stat = _stat(client, container, src)
        if stat.get("mode", 0) & GO_SYMLINK and stat.get("linkTarget"):
            rebase = posixpath.basename(src.rstrip("/"))
            src = stat["linkTarget"]
    resp = client.request("GET", f"/containers/{quote(container)}/archive", {"path": src})
    stat = json.loads(base64.b64decode(resp.getheader("X-Docker-Container-Path-Stat") or "e30="))
    if dst == "-":
        out = sys.stdout.buffer
        while chunk := resp.read1(1 << 20):
            out.write(chunk)
        out.flush()
        return 0
    src_is_dir = bool(stat.get("mode", 0) & GO_DIR)
    # the source's top name in the tar: its base (or "." for SRC/.)
    src_base = "." if _contents(src) else posixpath.basename(src.rstrip("/")) or "."
    src_base_out = rebase or src_base
    try:
        os.stat(dst)
        dst_exists, dst_dir = True, os.path.isdir(dst)
    except FileNotFoundError:
        dst_exists = dst_dir = False
        parent = os.path.dirname(os.path.abspath(dst.rstrip("/"))) or "/"
        if not os.path.isdir(parent):
            return _fail(f"lstat {parent}: no such file or directory")
    if dst_exists and dst_dir:
        into, new_base = dst, (src_base_out if src_base != "." else ".")
    elif dst_exists:
        if src_is_dir:
            return _fail("cannot copy directory")
        into, new_base = os.path.dirname(os.path.abspath(dst)), os.path.basename(dst)
    else:
        if not src_is_dir and _ends_dir(dst):
            return _fail("no such directory")
        into, new_base = os.path.dirname(os.path.abspath(dst.rstrip("/"))), os.path.basename(dst.rstrip("/"))
    counted = Counted(resp)
    if quiet:
        _extract_local(counted, into, src_base, new_base)
        return 0
    with Progress(sys.stderr, FROM_HEADER, counted):
        _extract_local(counted, into, src_base, new_base)
    print("Successfully copied", human_size(counted.total), "to", dst, file=sys.stderr)
    return 0


def _rename(name: str, old: str, new: str) -> str | None:
    name = name.rstrip("/")
    if old == ".":
        rest = name[1:] if name.startswith(".") else "/" + name
        rest = rest.lstrip("/")
        return posixpath.join(new, rest) if rest else new
    if name == old:
        return new
    if name.startswith(old + "/"):
        return new + name[len(old):]
    return None


def _extract_local(resp, into: str, old: str, new: str) -> int:
    total = 0
    with tarfile.open(fileobj=resp, mode="r|", bufsize=1 << 20, copybufsize=1 << 20) as tf:
        for member in tf:
            renamed = _rename(member.name, old, new)
            if renamed is None:
                continue
            member.name = renamed
            if member.islnk():
                linked = _rename(member.linkname, old, new)
                if linked is None:
                    continue
                member.linkname = linked
            if renamed == "." and member.isdir():
                continue
            total += member.size
            tf.extract(member, into, set_attrs=True, filter=_filter)
    return total


def _filter(member, path):
    return tarfile.tar_filter(member, path)


# ------------------------------------------------------------------------------------------ to

def _to_container(client, src: str, container: str, dst: str, keep_ids: bool, follow: bool, quiet: bool) -> int:
    if not dst.startswith("/"):
        dst = "/" + dst
    exists = is_dir = False
    try:
        st = _stat(client, container, dst)
        if st.get("mode", 0) & GO_SYMLINK and st.get("linkTarget"):
            dst = st["linkTarget"]
            st = _stat(client, container, dst)
        exists, is_dir = True, bool(st.get("mode", 0) & GO_DIR)
    except APIError:
        pass
    params = {"path": dst, "noOverwriteDirNonDir": "true"}
    if keep_ids:
        params["copyUIDGID"] = "true"
    url = f"/containers/{quote(container)}/archive"
    if src == "-":
        if not is_dir:
            return _fail(f'destination "{container}:{dst}" must be a directory')
        client.request("PUT", url, params, body=sys.stdin.buffer).read()
        return 0
    path = os.path.realpath(src) if follow else src
    try:
        local = os.lstat(path)
    except FileNotFoundError:
        return _fail(f"lstat {os.path.abspath(src)}: no such file or directory")
    src_is_dir = os.path.isdir(path) if _ends_dir(src) else stat_mod.S_ISDIR(local.st_mode)
    if not src_is_dir and _ends_dir(src):
        return _fail(f"lstat {os.path.abspath(src)}: not a directory")
    contents = _contents(src)
    src_base = os.path.basename(os.path.abspath(path)) if not contents else "."
    if exists and is_dir:
        into, name = dst, src_base
    elif exists:
        if src_is_dir:
            return _fail("cannot copy directory")
        into, name = posixpath.dirname(dst), posixpath.basename(dst)
    else:
        if not src_is_dir and _ends_dir(dst):
            return _fail("no such directory")
        into, name = posixpath.dirname(dst.rstrip("/")) or "/", posixpath.basename(dst.rstrip("/"))
    params["path"] = into
    read_fd, write_fd = os.pipe()
    counted = [0]

    def produce():
        with os.fdopen(write_fd, "wb", buffering=1 << 20) as out:
            try:
                with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 20,
                                  copybufsize=1 << 20) as tf:
                    root = os.path.abspath(path)
                    if contents:
                        for child in sorted(os.listdir(root)):
                            tf.add(os.path.join(root, child), arcname=child if name == "." else
                                   posixpath.join(name, child), filter=_count(counted))
                        if name != ".":
                            tf.add(root, arcname=name, recursive=False)
                    else:
                        tf.add(root, arcname=name, filter=_count(counted))
            except BrokenPipeError:
                pass

    writer = threading.Thread(target=produce, daemon=True)
    writer.start()
    with os.fdopen(read_fd, "rb") as raw:
        body = Counted(raw)
        try:
            if quiet:
                client.request("PUT", url, params, body=body, headers={"Content-Type": "application/x-tar"}).read()
            else:
                with Progress(sys.stderr, TO_HEADER, body):
                    client.request("PUT", url, params, body=body,
                                   headers={"Content-Type": "application/x-tar"}).read()
        finally:
            writer.join(timeout=5)
    if not quiet:
        print("Successfully copied", human_size(body.total), "to", f"{container}:{dst}", file=sys.stderr)
    return 0


def _count(counted):
    def f(ti):
        ti.uname = ti.gname = ""
        counted[0] += ti.size
        return ti
    return f
