"""The end-of-suite leak check must be able to fail: plant one leak of each kind and see it found."""
import os
import subprocess

from tests.leaks import TEST_PREFIX, find_leaks


def test_leak_check_sees_processes_mounts_and_cgroups(workdir):
    assert workdir.startswith(TEST_PREFIX)
    proc = subprocess.Popen(["sh", "-c", "sleep 60", os.path.join(workdir, "marker")])
    target = os.path.join(workdir, "mnt")
    os.makedirs(target)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", target], check=True)
    cgroup = "/sys/fs/cgroup/pids/berth-test-leakcheck"
    os.makedirs(cgroup, exist_ok=True)
    try:
        leaks = "\n".join(find_leaks())
        assert f"process {proc.pid}" in leaks
        assert f"mount: {target}" in leaks
        assert f"cgroup: {cgroup}" in leaks
    finally:
        proc.kill()
        proc.wait()
        subprocess.run(["umount", target], check=True)
        os.rmdir(cgroup)
    assert find_leaks() == []
