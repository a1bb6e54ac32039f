"""The composition root: construction builds objects and starts nothing; start() is the boot phase."""
from __future__ import annotations

import threading

from app.config import Config
from app.engine import Engine
from tests.fakes import FakeHost


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_construction_starts_no_thread_and_start_boots_in_order(tmp_path, monkeypatch):
    fake = FakeHost()
    config = Config(data_root=str(tmp_path / "root"), cgroup_parent="berth-fake")
    before = _threads()
    engine = Engine(config, host=fake.host(config.data_root, config.cgroup_parent))
    try:
        assert _threads() == before             # no watcher, no checkpointer yet
        order = []
        monkeypatch.setattr(engine.images, "boot", lambda: order.append("images"))
        real_reconcile = engine.containers.reconcile
        monkeypatch.setattr(engine.containers, "reconcile", lambda: order.append("reconcile") or real_reconcile())
        engine.start()
        assert order == ["images", "reconcile"]
        assert {"exit-watcher", "wal-checkpoint"} <= _threads() - before
    finally:
        engine.close()
    assert not ({"exit-watcher", "wal-checkpoint"} & _threads())


def test_an_engine_never_started_closes_cleanly(tmp_path):
    fake = FakeHost()
    config = Config(data_root=str(tmp_path / "root"), cgroup_parent="berth-fake")
    Engine(config, host=fake.host(config.data_root, config.cgroup_parent)).close()
    # the data root's lock was released: a second engine opens it
    Engine(config, host=fake.host(config.data_root, config.cgroup_parent)).close()


def test_the_engine_uses_the_host_it_is_given(tmp_path):
    fake = FakeHost()
    config = Config(data_root=str(tmp_path / "root"), cgroup_parent="berth-fake")
    host = fake.host(config.data_root, config.cgroup_parent)
    engine = Engine(config, host=host)
    try:
        assert engine.containers.runc is host.runc and engine.containers.monitor is host.conmon
        assert engine.containers.overlay is host.overlay
    finally:
        engine.close()
