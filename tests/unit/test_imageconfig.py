import pytest

from app.errors import InvalidParameter
from app.runtime.images.config import apply_changes, empty_container_config
from app.runtime.images.store import chain_ids


def test_changes_cover_every_instruction():
    cfg = apply_changes(empty_container_config(), [
        'CMD ["/bin/sh", "-c", "echo hi"]', "ENTRYPOINT /entry.sh", "ENV A=1 B=\"two words\"", "ENV C 3",
        "EXPOSE 80 53/udp", "USER nobody", "WORKDIR /srv", 'VOLUME ["/data", "/logs"]', "LABEL a=b c=\"d e\"",
        "ONBUILD RUN true", "STOPSIGNAL SIGINT", "env A=9"])
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/entry.sh"]
    assert cfg["Env"] == ["B=two words", "C=3", "A=9"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert (cfg["User"], cfg["WorkingDir"], cfg["StopSignal"]) == ("nobody", "/srv", "SIGINT")
    assert cfg["Volumes"] == {"/data": {}, "/logs": {}}
    assert cfg["Labels"] == {"a": "b", "c": "d e"}
    assert cfg["OnBuild"] == ["RUN true"]


@pytest.mark.parametrize("change,message", [
    ("RUN true", "RUN is not a valid change command"),
    ("CMD", "CMD requires at least one argument"),
    ("EXPOSE 99999", "invalid containerPort: 99999"),
    ("LABEL =x", "names can not be blank"),
])
def test_bad_changes(change, message):
    with pytest.raises(InvalidParameter, match=message):
        apply_changes(empty_container_config(), [change])


def test_chain_ids_follow_docker():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    import hashlib
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b]) == [a, "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()]
