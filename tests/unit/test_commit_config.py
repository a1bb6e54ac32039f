"""commit's config merge (moby's merge(userConf, imageConf))."""
from app.runtime.containers.commit import merge_config

BASE = {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Entrypoint": None, "Labels": {"x": "1"},
        "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/w", "User": "u", "Hostname": "abc"}


def test_empty_request_keeps_the_container_config():
    out = merge_config({}, BASE)
    assert out["Env"] == BASE["Env"] and out["Cmd"] == ["sh"] and out["WorkingDir"] == "/w"
    assert out["Labels"] == {"x": "1"} and out["User"] == "u"


def test_env_and_labels_merge_by_key_ports_union():
    out = merge_config({"Env": ["A=2", "B=3"], "Labels": {"y": "2"}, "ExposedPorts": {"443/tcp": {}}}, BASE)
    assert out["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert out["Labels"] == {"x": "1", "y": "2"} and set(out["ExposedPorts"]) == {"80/tcp", "443/tcp"}


def test_cmd_inherited_only_without_cmd_or_entrypoint():
    assert merge_config({"Cmd": ["echo"]}, BASE)["Cmd"] == ["echo"]
    out = merge_config({"Entrypoint": ["/init"]}, BASE)
    assert out["Entrypoint"] == ["/init"] and out["Cmd"] is None
    assert merge_config({"User": "", "WorkingDir": "/new"}, BASE)["WorkingDir"] == "/new"
