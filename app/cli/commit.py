"""`commit [-a] [-m] [-c …] [-p=true|false] CONTAINER [REPOSITORY[:TAG]]`, printing the new image's ID."""
from __future__ import annotations

import argparse
import json
import sys

from app.cli.images import REFERENCE_RE, split_tag


def _bool(text: str) -> bool:
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f'invalid argument "{text}" for "-p, --pause" flag: '
                                     f'strconv.ParseBool: parsing "{text}": invalid syntax')


def register(sub) -> None:
    p = sub.add_parser("commit", help="create a new image from a container's changes")
    p.add_argument("-a", "--author", default="", help='author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-m", "--message", default="", help="commit message")
    p.add_argument("-c", "--change", action="append", default=[], help="apply Dockerfile instruction to the image")
    p.add_argument("-p", "--pause", type=_bool, nargs="?", const=True, default=True,
                   help="pause container during commit (default true)")
    p.add_argument("container")
    p.add_argument("reference", nargs="?")
    p.set_defaults(func=cmd_commit)


def cmd_commit(args, client) -> int:
    params = {"container": args.container, "author": args.author or None, "comment": args.message or None,
              "pause": "1" if args.pause else "0", "changes": args.change or None}
    if args.reference:
        if not REFERENCE_RE.fullmatch(args.reference):
            print("invalid reference format", file=sys.stderr)
            return 1
        params["repo"], params["tag"] = split_tag(args.reference)
    resp = client.request("POST", "/commit", params, body={})
    print(json.loads(resp.read())["Id"])
    return 0
