"""The spec builder, the overlay rootfs and the image store together under the real runc: the pieces
`run` will be made of, proven before the container API exists."""
import os
import shutil
import subprocess

import pytest

from app.runtime.host.runc import Runc, parse_signal
from tests.integration.bundles import bundle

RUNC = shutil.which("runc")
pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


def run_container(workdir, layers, config, host_config=None, timeout=30):
    runc = Runc(RUNC, os.path.join(workdir, "runc"))
    with bundle(workdir, layers, config, host_config) as (cid, cdir):
        try:
            result = subprocess.run(runc.argv("run", "--bundle", cdir, cid), capture_output=True, text=True,
                                    timeout=timeout, stdin=subprocess.DEVNULL)
        finally:
            runc.delete(cid, force=True)
    return result, cid


def test_busybox_runs_isolated_as_the_requested_user(workdir, image_layers):
    result, cid = run_container(workdir, image_layers, {
        "Cmd": ["sh", "-c", "echo hello; id; hostname; cat /etc/hostname; echo $GREETING; ls /proc/1/exe >/dev/null "
                "&& cat /proc/1/cmdline | tr '\\0' ' '; echo; ip link 2>/dev/null | grep -c '^[0-9]'"],
        "User": "nobody", "Env": ["GREETING=hi there"]})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "hello"
    assert lines[1].startswith("uid=65534(nobody) gid=65534(nogroup)")
    assert lines[2] == lines[3] == cid[:12]
    assert lines[4] == "hi there"
    assert lines[5].startswith("sh -c")        # pid 1 is our process: a pid namespace of its own
    assert lines[6] == "1"                     # only lo: a network namespace of its own


def test_exit_code_and_not_found(workdir, image_layers):
    result, _ = run_container(workdir, image_layers, {"Cmd": ["sh", "-c", "exit 3"]})
    assert result.returncode == 3
    result, _ = run_container(workdir, image_layers, {"Cmd": ["/no/such/binary"]})
    assert result.returncode != 0 and "no such file or directory" in result.stderr


def test_memory_limit_kills_a_hog(workdir, image_layers):
    result, _ = run_container(workdir, image_layers, {"Cmd": ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]},
                              host_config={"Memory": 32 << 20, "MemorySwap": 32 << 20})
    assert result.returncode == 137 and "survived" not in result.stdout


def test_parse_signal():
    assert parse_signal("TERM") == parse_signal("SIGTERM") == parse_signal("15") == parse_signal("sigterm") == 15
    assert parse_signal(9) == 9
    from app.errors import InvalidParameter
    for bad in ("NOPE", "0", "999", ""):
        with pytest.raises(InvalidParameter, match="Invalid signal"):
            parse_signal(bad)
