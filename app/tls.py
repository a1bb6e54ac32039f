"""TLS for the API on tcp://, as dockerd and the docker CLI configure it.

Daemon: `--tlsverify` = mutual TLS (clients must present a certificate signed by `--tlscacert`, and
only that CA is trusted); `--tls` = TLS without client certificates; plain TCP gets a loud warning,
and on an address that is not loopback berth refuses to start unless told `--tls=false` (moby warns
and stalls start-up by 15 s; its documentation announces the refusal).
Client: `--tlsverify` checks the daemon's certificate against the CA; `--tls` encrypts without
checking it; a client certificate is sent when there is one. Files default to ca.pem, cert.pem and
key.pem in $DOCKER_CERT_PATH (else ~/.docker).

Only the standard library; the CLI imports this module (and so `ssl`) only when TLS is used.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from urllib.parse import urlsplit

CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "cert.pem", "key.pem"


class TLSConfigError(Exception):
    """A TLS setting that cannot be used; the message is printed to the user."""


def default_cert_path() -> str:
    return os.environ.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")


def parse_bool(text) -> bool:
    """A flag value as Go's strconv.ParseBool reads it (`--tls=false`)."""
    if isinstance(text, bool):
        return text
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"invalid boolean value {text!r}")


def _minimum_tls12(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2       # Docker's tlsconfig floor
    return ctx


def server_context(*, certfile: str, keyfile: str, cafile: str | None, verify_clients: bool) -> ssl.SSLContext:
    """The daemon's context; with `verify_clients`, a client certificate signed by `cafile` is required."""
    ctx = _minimum_tls12(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    try:
        ctx.load_cert_chain(certfile, keyfile)
        if verify_clients:
            if not cafile:
                raise TLSConfigError("invalid TLS configuration: --tlsverify needs a CA certificate (--tlscacert)")
            ctx.load_verify_locations(cafile=cafile)   # this CA only, never the system's roots
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as err:
        raise TLSConfigError(f"invalid TLS configuration: {err}") from err
    ctx.set_alpn_protocols(["http/1.1"])
    # A client's stdin EOF on attach is a TCP half-close under the session (our CLI): read it as an
    # EOF rather than an error. Bodies are framed by Content-Length or chunks, so truncation shows anyway.
    ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


def client_context(*, cafile: str | None, certfile: str | None, keyfile: str | None,
                   verify: bool) -> ssl.SSLContext:
    """The CLI's context: the daemon's certificate checked against `cafile` (and its name) with
    `verify`; a client certificate sent when both files exist."""
    ctx = _minimum_tls12(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    try:
        if verify:
            ctx.load_verify_locations(cafile=cafile)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if certfile and keyfile:
            ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as err:
        raise TLSConfigError(f"Could not load the TLS configuration: {err}") from err
    return ctx


def _existing(path: str | None) -> str | None:
    return path if path and os.path.exists(path) else None


def client_settings(*, tls: bool, tlsverify: bool, cacert: str | None, cert: str | None,
                    key: str | None) -> ssl.SSLContext | None:
    """The docker CLI's rules: TLS when --tls or --tlsverify (or DOCKER_TLS_VERIFY / BERTH_TLS_VERIFY
    set non-empty); unset files come from the cert path, a client certificate only when present."""
    tlsverify = tlsverify or bool(os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("BERTH_TLS_VERIFY"))
    if not (tls or tlsverify):
        return None
    base = default_cert_path()
    cacert = cacert or os.path.join(base, CA_FILE)
    cert = cert or _existing(os.path.join(base, CERT_FILE))
    key = key or _existing(os.path.join(base, KEY_FILE))
    return client_context(cafile=cacert, certfile=cert, keyfile=key, verify=tlsverify)


# ------------------------------------------------------------------------------------------ the daemon

PLAIN_TCP_WARNINGS = (
    "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone "
    "who has access to your network.",
    "Binding to an IP address, even on localhost, can also give access to scripts run in a browser. "
    "Be safe out there!",
)


def is_loopback(url: str) -> bool:
    """tcp://localhost:…, 127.0.0.0/8 or ::1 (a host name is looked up, as dockerd does)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def daemon_context(*, tls: bool | None, tlsverify: bool | None, cacert: str, cert: str, key: str,
                   hosts: list[str]) -> tuple[ssl.SSLContext | None, list[str]]:
    """dockerd's flag rules → (the context for tcp:// and fd:// listeners or None, warnings).
    Any --tlsverify turns TLS on; `--tlsverify=false` means TLS without client certificates, as
    `--tls` alone does. Raises TLSConfigError for plain TCP on a non-loopback address without an
    explicit `--tls=false`."""
    use_tls = bool(tls) or tlsverify is not None
    verify = bool(tlsverify)
    warnings: list[str] = []
    for url in hosts:
        if not url.startswith("tcp://") or (use_tls and verify):
            continue
        if not use_tls and tls is not False and not is_loopback(url):
            raise TLSConfigError(
                f"refusing to serve the API on {url} without TLS: everyone who can reach that address would get "
                "root access on this machine. Use --tlsverify with --tlscacert, --tlscert and --tlskey, listen on "
                "a loopback address, or pass --tls=false to accept the risk")
        warnings += [f"{text} host={url}" for text in PLAIN_TCP_WARNINGS]
        if use_tls:
            warnings.append(f"TLS without client certificates (--tlsverify not set): anyone who can reach {url} "
                            "can use the API")
    if not use_tls:
        return None, warnings
    return server_context(certfile=cert, keyfile=key, cafile=cacert, verify_clients=verify), warnings
