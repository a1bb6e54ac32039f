import importlib
import sys


def test_wsgi_module_serves_the_same_app(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_DATA_ROOT", str(tmp_path / "root"))
    sys.modules.pop("wsgi", None)
    wsgi = importlib.import_module("wsgi")
    try:
        client = wsgi.app.test_client()
        assert client.get("/_ping").data == b"OK"
        assert client.get("/v1.45/info").get_json()["DockerRootDir"] == str(tmp_path / "root")
    finally:
        wsgi.app.extensions["berth"].close()
        sys.modules.pop("wsgi", None)
