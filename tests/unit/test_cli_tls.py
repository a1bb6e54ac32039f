"""TLS settings: dockerd's rules for tcp:// listeners, the CLI's flags, and `ssl` kept out of the
CLI's start-up unless TLS is used."""
import os
import subprocess
import sys

import pytest

from app.cli.main import _command_name
from app.tls import TLSConfigError, daemon_context, is_loopback, parse_bool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_plain_tcp_rules():
    ctx, warnings = daemon_context(tls=None, tlsverify=None, cacert="", cert="", key="",
                                   hosts=["unix:///x.sock", "tcp://127.0.0.1:2375"])
    assert ctx is None and any("without --tlsverify is insecure" in w for w in warnings)
    assert daemon_context(tls=None, tlsverify=None, cacert="", cert="", key="", hosts=["unix:///x.sock"]) == (None, [])
    with pytest.raises(TLSConfigError, match="refusing to serve the API on tcp://0.0.0.0:2375 without TLS"):
        daemon_context(tls=None, tlsverify=None, cacert="", cert="", key="", hosts=["tcp://0.0.0.0:2375"])
    ctx, warnings = daemon_context(tls=False, tlsverify=None, cacert="", cert="", key="", hosts=["tcp://0.0.0.0:2375"])
    assert ctx is None and warnings                  # told so explicitly: warned, not refused
    with pytest.raises(TLSConfigError, match="invalid TLS configuration"):
        daemon_context(tls=None, tlsverify=True, cacert="/no/ca.pem", cert="/no/cert.pem", key="/no/key.pem",
                       hosts=["tcp://0.0.0.0:2376"])


def test_loopback_and_bools():
    assert is_loopback("tcp://localhost:1") and is_loopback("tcp://127.0.0.2:1") and is_loopback("tcp://[::1]:1")
    assert not is_loopback("tcp://0.0.0.0:1") and not is_loopback("tcp://10.1.2.3:1")
    assert parse_bool("false") is False and parse_bool("1") is True
    with pytest.raises(ValueError):
        parse_bool("yes")


def test_global_tls_flags_are_skipped_when_finding_the_command():
    assert _command_name(["--tlsverify", "--tlscacert", "ca.pem", "--tlscert=c.pem", "-H", "tcp://x:1", "ps"]) == "ps"
    assert _command_name(["--tls", "version"]) == "version"


def _imports_ssl(*argv: str, **env: str) -> bool:
    code = ("import sys; from app.cli.main import main\n"
            f"main({list(argv)!r})\n"
            "print('SSL', 'ssl' in sys.modules)")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "BERTH_"))}
    environ.update(env)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=environ)
    assert "SSL" in r.stdout, r.stderr
    return "SSL True" in r.stdout


def test_ssl_is_imported_only_when_tls_is_used(tmp_path):
    missing = f"unix://{tmp_path}/none.sock"
    assert not _imports_ssl("-H", missing, "ps")
    assert not _imports_ssl("-H", "tcp://127.0.0.1:9", "ps")
    assert _imports_ssl("-H", "tcp://127.0.0.1:9", "--tls", "ps")
    assert _imports_ssl("-H", "tcp://127.0.0.1:9", "ps", BERTH_TLS_VERIFY="1", DOCKER_CERT_PATH=str(tmp_path))
