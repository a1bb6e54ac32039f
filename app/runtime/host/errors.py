"""The two ways an archive is refused."""
from app.errors import InvalidParameter, PayloadTooLarge


class ArchiveError(InvalidParameter):
    """Bad or unsafe archive content (HTTP 400); the message names the entry."""


class ArchiveTooLarge(PayloadTooLarge):
    """The archive exceeds a daemon bound (HTTP 413); the message names the bound and its flag."""
