"""The host's errors, classified once into app/errors.py's taxonomy.

The host adapters raise BerthErrors (RuncError for runc and conmon, MountError for overlayfs, the
archive errors below); `classify` is the boundary for whatever else reaches a verb from the host,
an OSError above all (ENOSPC, a vanished directory), so that the API answers with a status and a
message that says what failed instead of a stray exception's text.
"""
from __future__ import annotations

import errno as errnos
import os

from app.errors import BerthError, InvalidParameter, PayloadTooLarge, SystemError_


class ArchiveError(InvalidParameter):
    """Bad or unsafe archive content (HTTP 400); the message names the entry."""


class ArchiveTooLarge(PayloadTooLarge):
    """The archive exceeds a daemon bound (HTTP 413); the message names the bound and its flag."""


class HostError(SystemError_):
    """A genuine system fault (HTTP 500) with the step that failed and the OS's reason."""

    def __init__(self, message: str, errno: int = 0):
        super().__init__(message)
        self.errno = errno


def describe_os_error(err: OSError) -> str:
    """`<path>: <strerror>` (the path when the OSError names one), e.g. `/x/diff: No such file...`."""
    reason = os.strerror(err.errno) if err.errno else (err.strerror or str(err))
    paths = [p for p in (err.filename, err.filename2) if p]
    return ": ".join([*map(str, paths), reason]) if paths else reason


def classify(err: BaseException, doing: str) -> BerthError:
    """`err` as a BerthError: itself when it is one; an OSError or anything else as a HostError
    whose message starts with `doing` (what was being done, e.g. "failed to start container ab12")."""
    if isinstance(err, BerthError):
        return err
    if isinstance(err, OSError):
        hint = ""
        if err.errno in (errnos.ENOSPC, errnos.EDQUOT):
            hint = " (the data root's file system is full)"
        return HostError(f"{doing}: {describe_os_error(err)}{hint}", err.errno or 0)
    return HostError(f"{doing}: {err.__class__.__name__}: {err}" if str(err) else f"{doing}: {err.__class__.__name__}")
