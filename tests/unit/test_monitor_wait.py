"""Monitor.create's wait for the first conmon process: exact wake-up (pidfd), Popen.wait's timeout."""
import subprocess
import sys
import time

import pytest

from app.runtime.host.conmon import wait_exited


def test_returns_once_the_process_exits_and_reaps_it():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.05)"])
    started = time.monotonic()
    wait_exited(proc, 10)
    assert time.monotonic() - started < 5
    assert proc.returncode == 0


def test_an_already_exited_child_is_collected():
    proc = subprocess.Popen(["true"])
    time.sleep(0.2)                                  # a zombie by now
    wait_exited(proc, 10)
    assert proc.returncode == 0


def test_times_out_like_popen_wait():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_exited(proc, 0.2)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
