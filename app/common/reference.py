"""Image references, following Docker's distribution/reference grammar.

Grammar (as in distribution/reference)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain-and-port "/"] path-component ["/" path-component]*
    domain-and-port  := host [":" port-number]
    host             := domain-name | "[" ipv6 "]"
    domain-name      := domain-component ["." domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := alphanumeric [separator alphanumeric]*
    alphanumeric     := /[a-z0-9]+/
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex   (algorithm /[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*/,
                                             hex at least 32 hex digits)

Normalization (ParseNormalizedNamed): a first path element is a registry domain only if it
contains "." or ":", is "localhost", or has uppercase letters; otherwise the domain is
"docker.io". "index.docker.io" becomes "docker.io", and single-element Hub names get the
"library/" prefix. The familiar form drops "docker.io/" and a one-level "library/".

Stdlib only: the CLI imports this module at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "LEGACY_DEFAULT_DOMAIN",
    "NAME_TOTAL_LENGTH_MAX",
    "OFFICIAL_REPO_PREFIX",
    "Reference",
    "ReferenceError",
    "is_image_id",
    "normalize_name",
    "parse_docker_ref",
    "parse_reference",
    "split_repo_tag",
    "validate_tag",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255
_LOCALHOST = "localhost"

# --- the grammar ------------------------------------------------------------------------------

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN_AND_PORT = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# re.ASCII: Go's \w is [0-9A-Za-z_], Python's would accept any Unicode word character.
_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_NAME_RE = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
_IMAGE_ID_RE = re.compile(r"(?:sha256:)?[a-f0-9]{64}", re.ASCII)

# Digest algorithms go-digest knows, with their hex length.
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_HEX_RE = re.compile(r"[a-f0-9]+", re.ASCII)

# --- errors (Docker's wording) ----------------------------------------------------------------

ERR_INVALID_FORMAT = "invalid reference format"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_DIGEST_FORMAT = "invalid checksum digest format"
ERR_DIGEST_LENGTH = "invalid checksum digest length"
ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"
ERR_TAG_FORMAT = "invalid tag format"


class ReferenceError(ValueError):  # noqa: A001 - the name is part of the API
    """An unparsable image reference; str() is Docker's message."""


# --- the value --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full normalized name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: ``busybox``, ``user/img``, ``localhost:5000/a/b``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX):
            rest = path[len(OFFICIAL_REPO_PREFIX):]
            # Only a one-level "library/x" is shortened ("library/a/b" stays as is).
            if "/" not in rest:
                return rest
        return path

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def familiar(self) -> str:
        """Familiar string with tag/digest: ``busybox:latest``, ``a/b@sha256:…``."""
        return self.familiar_name + self._suffix()

    def full(self) -> str:
        """Fully qualified string: ``docker.io/library/busybox:latest``."""
        return self.name + self._suffix()

    def with_default_tag(self) -> Reference:
        """TagNameOnly: add ``latest`` when there is neither a tag nor a digest."""
        if self.tag is None and self.digest is None:
            return replace(self, tag=DEFAULT_TAG)
        return self

    def without_tag(self) -> Reference:
        return replace(self, tag=None)

    def without_digest(self) -> Reference:
        return replace(self, digest=None)

    def __str__(self) -> str:
        return self.full()


# --- parsing ----------------------------------------------------------------------------------


def _validate_digest(digest: str) -> None:
    """go-digest's Digest.Validate, for a string the grammar already accepted."""
    algorithm, _, encoded = digest.partition(":")
    expected = _DIGEST_HEX_LEN.get(algorithm)
    if expected is None:
        raise ReferenceError(ERR_DIGEST_UNSUPPORTED)
    if len(encoded) != expected:
        raise ReferenceError(ERR_DIGEST_LENGTH)
    if not _DIGEST_HEX_RE.fullmatch(encoded):
        raise ReferenceError(ERR_DIGEST_FORMAT)


def _parse(text: str) -> Reference:
    """reference.Parse on an already domain-qualified string."""
    m = _REFERENCE_RE.fullmatch(text)
    if m is None:
        if text and _REFERENCE_RE.fullmatch(text.lower()):
            raise ReferenceError(f"{ERR_INVALID_FORMAT}: repository name must be lowercase")
        raise ReferenceError(ERR_INVALID_FORMAT)
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(ERR_NAME_TOO_LONG)
    nm = _NAME_RE.fullmatch(name)
    assert nm is not None  # the name already matched inside the reference
    if digest is not None:
        _validate_digest(digest)
    return Reference(domain=nm.group(1) or "", path=nm.group(2), tag=tag, digest=digest)


def _split_docker_domain(text: str) -> tuple[str, str]:
    i = text.find("/")
    first = text[:i]
    if i == -1 or (
        "." not in first and ":" not in first and first != _LOCALHOST and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, text
    else:
        domain, remainder = first, text[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_reference(text: str) -> Reference:
    """Parse like Docker's ParseNormalizedNamed (tag and digest are both kept).

    ``busybox`` -> docker.io/library/busybox; ``user/img:tag``; ``localhost:5000/a/b:tag``;
    ``name:tag@sha256:…``. Raises ReferenceError with Docker's message.
    """
    if not isinstance(text, str):
        raise ReferenceError(ERR_INVALID_FORMAT)
    if _IDENTIFIER_RE.fullmatch(text):
        raise ReferenceError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text)
    remote_name = remainder.split(":", 1)[0]
    if remote_name.lower() != remote_name:
        raise ReferenceError(
            f"{ERR_INVALID_FORMAT}: repository name ({remote_name}) must be lowercase"
        )
    return _parse(f"{domain}/{remainder}")


def parse_docker_ref(text: str) -> Reference:
    """ParseDockerRef: like parse_reference, but a tag+digest reference loses its tag and a
    bare name gets ``latest``."""
    ref = parse_reference(text)
    if ref.digest is not None:
        return ref.without_tag()
    return ref.with_default_tag()


def normalize_name(text: str) -> str:
    """``docker.io/library/busybox`` -> ``busybox:latest``; digests are kept as given."""
    return parse_reference(text).with_default_tag().familiar()


def is_image_id(text: str) -> bool:
    """True for ``sha256:<64 hex>`` or a bare 64-hex ID."""
    return isinstance(text, str) and _IMAGE_ID_RE.fullmatch(text) is not None


def split_repo_tag(repo: str, tag: str | None) -> tuple[str, str | None]:
    """Split ``name:tag`` in API ``repo`` parameters when ``tag`` is empty.

    Only a colon after the last ``/`` separates a tag (``localhost:5000/a`` has none); a repo
    carrying a digest is left alone.
    """
    if tag:
        return repo, tag
    last = repo[repo.rfind("/") + 1:]
    if "@" not in last:
        i = repo.rfind(":")
        if i > repo.rfind("/"):
            return repo[:i], repo[i + 1:] or None
    return repo, None


def validate_tag(tag: str) -> None:
    if not isinstance(tag, str) or _TAG_RE.fullmatch(tag) is None:
        raise ReferenceError(ERR_TAG_FORMAT)
