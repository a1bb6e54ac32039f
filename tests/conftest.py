import pytest


@pytest.fixture
def engine(tmp_path):
    from app.config import Config
    from app.engine import Engine
    eng = Engine(Config(data_root=str(tmp_path / "root"))).start()
    yield eng
    eng.close()


@pytest.fixture
def api(engine):
    from app import create_app
    return create_app(engine.config, engine).test_client()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if the suite left berth processes, mounts, netns, links, rules or cgroups behind."""
    from tests.leaks import find_leaks
    leaks = find_leaks()
    if leaks:
        print("\nLEAK CHECK FAILED: the test suite left these behind:\n  " + "\n  ".join(leaks))
        session.exitstatus = 1
    else:
        print("\nleak check: nothing left behind")
