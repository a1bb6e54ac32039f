"""Command-line entry: `python cli.py [-H HOST] COMMAND ...`, docker-style.

Each command module adds its subcommands with `register(subparsers)`; a command is a function
`(args, client) -> exit code`, or `(args) -> exit code` when it needs no daemon (daemon, admin).
"""
from __future__ import annotations

import argparse
import os
import sys

from app.cli import admin, archive, commit, containers, exec as exec_cmd, images, networks, resources, system, \
    volumes
from app.cli.client import APIError, CannotConnect, Client, ProtocolError
from app.common.defaults import DEFAULT_HOST

COMMAND_MODULES = (system, images, containers, exec_cmd, archive, commit, resources, networks, admin, volumes)


class CommandError(Exception):
    """A user error found by the CLI itself (bad flag value …): printed, exit 1."""


class _Unused:
    """Takes the place of a command's parser that this run does not need: every call is ignored."""

    def __getattr__(self, _name):
        return lambda *args, **kwargs: self


class _OnlyCommand:
    """Wraps the subparsers action so that only `command`'s parser is really built. Building all of
    them (~40 parsers, several hundred arguments) was a fifth of every command's start-up."""

    def __init__(self, sub, command: str):
        self.sub, self.command, self.built = sub, command, False

    def add_parser(self, name, **kwargs):
        if name != self.command and self.command not in kwargs.get("aliases", ()):
            return _Unused()
        self.built = True
        return self.sub.add_parser(name, **kwargs)


_GLOBAL_WITH_VALUE = ("-H", "--host", "--tlscacert", "--tlscert", "--tlskey")
_GLOBAL_FLAGS = ("--tls", "--tlsverify")


def _command_name(argv: list[str]) -> str | None:
    """The command word of a command line: the first word that is not a global option."""
    words = iter(argv)
    for word in words:
        if word in _GLOBAL_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
        elif not (word.startswith("-H") or word in _GLOBAL_FLAGS
                  or word.startswith(tuple(f"{o}=" for o in _GLOBAL_WITH_VALUE + _GLOBAL_FLAGS))):
            return None                   # --help, or an unknown option: the full parser answers
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; given a command line, only what that line's command needs."""
    parser = argparse.ArgumentParser(
        prog="berth", description="A container engine that speaks the Docker Engine API.")
    parser.add_argument("-H", "--host", default=None,
                        help=f"daemon socket to connect to (env BERTH_HOST, default {DEFAULT_HOST})")
    parser.add_argument("--tls", action="store_true", help="use TLS; implied by --tlsverify")
    parser.add_argument("--tlsverify", action="store_true",
                        help="use TLS and verify the daemon (env DOCKER_TLS_VERIFY or BERTH_TLS_VERIFY)")
    parser.add_argument("--tlscacert", help="trust certs signed only by this CA (default ca.pem in $DOCKER_CERT_PATH "
                                            "or ~/.docker)")
    parser.add_argument("--tlscert", help="path to the TLS certificate file (default cert.pem there)")
    parser.add_argument("--tlskey", help="path to the TLS key file (default key.pem there)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    command = _command_name(argv) if argv is not None else None
    if command is not None and command != "help":
        only = _OnlyCommand(sub, command)
        for module in COMMAND_MODULES:
            module.register(only)
        if only.built:
            return parser
        return build_parser()             # an unknown command: argparse lists the real ones
    for module in COMMAND_MODULES:
        module.register(sub)
    help_parser = sub.add_parser("help", help="show help for berth or one command")
    help_parser.add_argument("topic", nargs="?")
    help_parser.set_defaults(func=None, needs_client=False)
    return parser


def _tls_context(args, host: str):
    """TLS for a tcp:// host, as the docker CLI decides it; `ssl` is imported only then (start-up)."""
    wanted = args.tls or args.tlsverify or os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("BERTH_TLS_VERIFY")
    if not wanted or host.startswith("unix://"):
        return None
    from app.tls import TLSConfigError, client_settings
    try:
        return client_settings(tls=args.tls, tlsverify=args.tlsverify, cacert=args.tlscacert, cert=args.tlscert,
                               key=args.tlskey)
    except TLSConfigError as err:
        raise CannotConnect(str(err)) from err


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "help":
        if args.topic:
            choices = parser._subparsers._group_actions[0].choices
            if args.topic not in choices:
                print(f"berth: unknown command {args.topic!r}", file=sys.stderr)
                return 1
            choices[args.topic].print_help()
        else:
            parser.print_help()
        return 0
    if not getattr(args, "needs_client", True):
        return args.func(args)
    host = args.host or os.environ.get("BERTH_HOST") or DEFAULT_HOST
    try:
        client = Client(host, ssl_context=_tls_context(args, host))
    except CannotConnect as err:
        print(err, file=sys.stderr)
        return 1
    try:
        return args.func(args, client)
    except CannotConnect as err:
        print(err, file=sys.stderr)
        return 1
    except APIError as err:
        print(f"Error response from daemon: {err.message}", file=sys.stderr)
        return 1
    except CommandError as err:
        print(f"berth: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except (ProtocolError, ConnectionError, TimeoutError) as err:   # the daemon went away mid-answer
        print(f"error reading the daemon's response: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()
