"""`exec`: run a command in a running container, as the docker CLI does (cli/command/container/exec.go):
create the exec, start it on a hijacked connection (or detached with -d), resize a TTY, relay, then
exit with the exec's code from `GET /exec/{id}/json`."""
from __future__ import annotations

import argparse
import json
import os
import sys
from urllib.parse import quote

from app.cli.attach import AttachSession
from app.cli.client import APIError, CannotConnect, ProtocolError
from app.cli.containers import _env_flag, _err, read_env_file
from app.common.detachkeys import parse_detach_keys
from app.errors import InvalidParameter


def register(sub) -> None:
    p = sub.add_parser("exec", help="execute a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="read in a file of environment variables")
    p.add_argument("-u", "--user", default="", help="username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    p.add_argument("--privileged", action="store_true", help="give extended privileges to the command")
    p.add_argument("--detach-keys", default=None, help="override the key sequence for detaching")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)


class ExecSession(AttachSession):
    """AttachSession's relay over `POST /exec/{id}/start` instead of an attach."""

    def __init__(self, client, eid: str, stdin: bool, tty: bool, detach_keys: str | None, body: dict):
        self.tty = tty
        self.stdin = stdin
        self.detached = False
        try:
            self._keys = parse_detach_keys(detach_keys)
        except InvalidParameter:
            self._keys = b""
        self.sock, self._pending = client.hijack("POST", f"/exec/{quote(eid)}/start", body=body)


def _resize(client, eid: str) -> None:
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return
    try:
        client.request("POST", f"/exec/{quote(eid)}/resize", {"h": size.lines, "w": size.columns}).read()
    except (APIError, CannotConnect, ProtocolError, OSError):
        pass


def _follow_window(client_factory, eid: str):
    import signal

    def on_winch(_signum, _frame):
        client = client_factory()
        try:
            _resize(client, eid)
        finally:
            client.close()

    previous = signal.signal(signal.SIGWINCH, on_winch)
    return lambda: signal.signal(signal.SIGWINCH, previous)


def cmd_exec(args, client) -> int:
    if not args.command:
        return _err('"exec" requires at least 2 arguments.\nUsage:  berth exec [OPTIONS] CONTAINER COMMAND [ARG...]', 1)
    try:
        env = [entry for path in args.env_file for entry in read_env_file(path)]
    except ValueError as err:
        return _err(str(err), 1)
    env += [_env_flag(value) for value in args.env]
    if args.detach_keys is not None:
        try:
            parse_detach_keys(args.detach_keys)
        except InvalidParameter:
            return _err(f"Invalid detach keys ({args.detach_keys}) provided", 1)
    tty_out = args.tty and sys.stdout.isatty()
    body = {"User": args.user, "Privileged": args.privileged, "Tty": args.tty, "AttachStdin": args.interactive
            and not args.detach, "AttachStdout": not args.detach, "AttachStderr": not args.detach,
            "Detach": args.detach, "DetachKeys": args.detach_keys or "", "Env": env, "WorkingDir": args.workdir,
            "Cmd": args.command}
    start = {"Detach": args.detach, "Tty": args.tty}
    if tty_out:
        size = os.get_terminal_size(sys.stdout.fileno())
        body["ConsoleSize"] = start["ConsoleSize"] = [size.lines, size.columns]
    client.get_json(f"/containers/{quote(args.container)}/json")      # as the docker CLI: it must exist
    eid = json.loads(client.request("POST", f"/containers/{quote(args.container)}/exec", body=body).read())["Id"]
    if args.detach:
        client.request("POST", f"/exec/{quote(eid)}/start", body=start).read()
        return 0
    session = ExecSession(client, eid, args.interactive, args.tty, args.detach_keys, start)
    restore = None
    if tty_out:
        _resize(client, eid)
        restore = _follow_window(client.another, eid)
    try:
        session.run()
    finally:
        if restore:
            restore()
    if session.detached:
        print("read escape sequence", file=sys.stderr)     # the docker CLI's EscapeError, exit 1
        return 1
    info = client.get_json(f"/exec/{quote(eid)}/json")
    code = info.get("ExitCode")
    return int(code) if code is not None else 0
