"""`cp`: copy between a container and the local file system, with the docker CLI's rules
(cli/command/container/cp.go and moby's pkg/archive/copy.go): a directory is copied into an existing
directory or becomes the new name; `SRC/.` copies a directory's contents; a file onto `DEST/` needs
DEST to be a directory; `-` is a tar on stdin or stdout."""
from __future__ import annotations

import base64
import json
import os
import posixpath
import shutil
import stat as stat_mod
import subprocess
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

    def copy_to(self, fd: int) -> None:
        """The rest of the stream into the pipe fd (spliced where the response allows)."""
        def add(n: int) -> None:
            self.total += n
        if hasattr(self.raw, "copy_to"):
            self.raw.copy_to(fd, add)
            return
        while chunk := self.read1(1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]

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


# ------------------------------------------------------------------------------------------ GNU tar

# Where GNU tar is installed it makes and unpacks the local side of the archive: Python's tarfile
# costs ~35x GNU tar's CPU to write a tree and ~1.5x to unpack one (bench/archive.py), which is most
# of a cp's time. Without GNU tar the tarfile code below does the same job.
_GNU_TAR: list = []


def gnu_tar() -> str | None:
    """The path of a GNU tar, if one is on PATH (checked once)."""
    if not _GNU_TAR:
        found = shutil.which("tar")
        try:
            if found and b"GNU tar" not in subprocess.run([found, "--version"], capture_output=True,
                                                          timeout=10).stdout.split(b"\n", 1)[0]:
                found = None
        except (OSError, subprocess.SubprocessError):
            found = None
        _GNU_TAR.append(found)
    return _GNU_TAR[0]


def _regex(text: str) -> str:
    """`text` as a literal in a GNU tar --transform regex (basic syntax, "," as the delimiter)."""
    return "".join("\\" + c if c in "\\.[]*^$," else c for c in text)


def _replacement(text: str) -> str:
    return "".join("\\" + c if c in "\\&," else c for c in text)


def _rename_expr(old: str, new: str) -> list[str]:
    """--transform renaming the leading `old` of member and hard-link names to `new` (never a
    symlink's target: S)."""
    if old == new:
        return []
    return [f"--transform=s,^{_regex(old)},{_replacement(new)},rhS"]


def _tar_failed(proc_stderr: bytes, code: int) -> int:
    text = proc_stderr.decode(errors="replace").strip()
    return _fail(text.splitlines()[-1] if text else f"tar exited with status {code}")


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
    tar = gnu_tar()
    if tar:
        return _extract_gnu(tar, resp, into, old, new)
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


def _extract_gnu(tar: str, resp, into: str, old: str, new: str) -> int:
    """GNU tar unpacks the daemon's archive into `into`, renaming its top entry `old` to `new`. Files
    get the invoking user as owner (the docker CLI's rule), modes are kept, and an existing target
    directory's own metadata is left alone when the contents are copied into it."""
    cmd = [tar, "-x", "-f", "-", "-C", into, "--no-same-owner", "--preserve-permissions",
           "--warning=no-timestamp"]
    if new == ".":
        cmd.append("--no-overwrite-dir")
    if old == "." and new != ".":
        cmd += _rename_expr(".", new)
    elif old != ".":
        cmd += _rename_expr(old, new)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    reader.start()
    try:
        resp.copy_to(proc.stdin.fileno())
    except BrokenPipeError:
        pass
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    code = proc.wait()
    reader.join(5)
    if code != 0:
        raise SystemExit(_tar_failed(b"".join(errors), code))
    return resp.total


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
    tar = gnu_tar()
    if tar:
        return _send_gnu(client, tar, url, params, path, contents, name, container, dst, quiet)
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
            _put_tar(client, url, params, body, quiet)
        finally:
            writer.join(timeout=5)
    if not quiet:
        print("Successfully copied", human_size(body.total), "to", f"{container}:{dst}", file=sys.stderr)
    return 0


def _put_tar(client, url: str, params: dict, body: Counted, quiet: bool) -> None:
    """PUT the tar read from `body`, with the progress line unless quiet."""
    if quiet:
        client.request("PUT", url, params, body=body, headers={"Content-Type": "application/x-tar"}).read()
        return
    with Progress(sys.stderr, TO_HEADER, body):
        client.request("PUT", url, params, body=body, headers={"Content-Type": "application/x-tar"}).read()


def _send_gnu(client, tar: str, url: str, params: dict, path: str, contents: bool, name: str,
              container: str, dst: str, quiet: bool) -> int:
    """GNU tar makes the archive: `path` itself named `name`, or (SRC/. into an existing directory)
    its children at the top. PAX format without atime/ctime/mtime records and without owner names,
    as the tarfile writer below makes it."""
    root = os.path.abspath(path)
    cmd = [tar, "-c", "-f", "-", "--format=posix", "--pax-option=delete=atime,delete=ctime,delete=mtime",
           "--numeric-owner", "--warning=no-file-ignored"]
    children = None
    if contents and name == ".":
        children = sorted(os.listdir(root))
        cmd += ["-C", root, "--null", "--verbatim-files-from", "-T", "-"]
    else:
        base = os.path.basename(root) or "/"
        cmd += ["-C", os.path.dirname(root) or "/"] + _rename_expr(base, name) + ["--", base]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if children is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if children is not None:
        def feed():
            try:
                with proc.stdin:
                    proc.stdin.write(b"".join(os.fsencode(c) + b"\0" for c in children))
            except BrokenPipeError:
                pass
        threading.Thread(target=feed, daemon=True).start()
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
    reader.start()
    body = Counted(proc.stdout)
    try:
        _put_tar(client, url, params, body, quiet)
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(5)
    # 1 is a warning (a file changed while it was read): the archive was sent whole
    if proc.returncode not in (0, 1):
        return _tar_failed(b"".join(errors), proc.returncode)
    if errors and errors[0]:
        sys.stderr.write(errors[0].decode(errors="replace"))
    if not quiet:
        print("Successfully copied", human_size(body.total), "to", f"{container}:{dst}", file=sys.stderr)
    return 0


def _count(counted):
    def f(ti):
        ti.uname = ti.gname = ""
        counted[0] += ti.size
        return ti
    return f
