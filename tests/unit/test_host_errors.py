"""The host's errors classified once (app/runtime/host/errors.py and the adapters)."""
from __future__ import annotations

import errno

import pytest

from app.errors import BerthError, Conflict
from app.runtime.host.errors import HostError, classify
from app.runtime.host.overlay import MountError, mount_rootfs
from app.runtime.host.runc import Runc, RuncError


def test_classify_keeps_berth_errors_and_names_the_step_of_others():
    conflict = Conflict("busy")
    assert classify(conflict, "doing x") is conflict
    err = classify(OSError(errno.ENOSPC, "No space left on device", "/data/x/config.json"), "failed to start container ab")
    assert isinstance(err, HostError) and err.status == 500 and err.errno == errno.ENOSPC
    assert err.message == ("failed to start container ab: /data/x/config.json: No space left on device "
                           "(the data root's file system is full)")
    other = classify(KeyError("k"), "failed to start container ab")
    assert isinstance(other, BerthError) and other.status == 500
    assert other.message == "failed to start container ab: KeyError: 'k'"


def test_a_missing_layer_dir_is_named_before_any_mount(tmp_path):
    present, missing = tmp_path / "l1", tmp_path / "l2"
    present.mkdir()
    with pytest.raises(MountError) as failed:
        mount_rootfs(str(tmp_path / "c"), [str(present), str(missing)])
    assert failed.value.status == 500 and failed.value.errno == errno.ENOENT
    assert f"image layer directory {missing} is missing" in failed.value.message


def test_runc_that_cannot_be_run_is_a_runc_error(tmp_path):
    runc = Runc(str(tmp_path / "no-such-runc"), str(tmp_path / "root"))
    with pytest.raises(RuncError) as failed:
        runc.pause("x")
    assert failed.value.message == "runc pause: No such file or directory"
