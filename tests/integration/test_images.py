"""Images end to end: import, list, inspect, history, tag, rmi, save/load — our CLI, docker-py, docker
CLI and skopeo against a real daemon."""
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

from tests.integration.conftest import docker_cli, needs_docker_cli

SKOPEO = shutil.which("skopeo")


def _events(daemon, *filters):
    args = ["events", "--since", "0", "--until", f"{time.time():.6f}", "--format", "{{.Action}} {{.Actor.Attributes.name}}"]
    for f in filters:
        args += ["--filter", f]
    return daemon.cli(*args, check=True).stdout.splitlines()


def _blob_count(daemon):
    return len(os.listdir(os.path.join(daemon.data_root, "image", "blobs", "sha256")))


def test_import_list_inspect_history_with_cli(daemon, busybox_tar):
    r = daemon.cli("import", "-m", "", "-c", "CMD [\"/bin/sh\"]", "-c", "ENV A=1 B=2", "-c", "LABEL tier=web",
                   busybox_tar, "busybox:latest", check=True)
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    out = daemon.cli("images", check=True).stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert out[1].split()[:3] == ["busybox", "latest", image_id[7:19]]
    info = json.loads(daemon.cli("inspect", "busybox", check=True).stdout)[0]
    assert info["Id"] == image_id and info["RepoTags"] == ["busybox:latest"]
    assert info["Config"]["Cmd"] == ["/bin/sh"] and info["Config"]["Env"] == ["A=1", "B=2"]
    assert info["Config"]["Labels"] == {"tier": "web"}
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) == 1
    assert info["Os"] == "linux" and info["Size"] > 1_000_000
    r = daemon.cli("inspect", "-f", "{{.Os}} {{join .Config.Cmd \",\"}} {{index .Config.Labels \"tier\"}}", image_id[7:19],
                   check=True)
    assert r.stdout.strip() == "linux /bin/sh web"
    hist = daemon.cli("history", "busybox", check=True).stdout.splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"] and "Imported from -" in hist[1]
    assert _events(daemon, "type=image") == [f"import {image_id}", "tag busybox:latest"]


def test_import_compressed_and_from_url_with_docker_py(daemon, busybox_tar, workdir):
    import docker
    api = docker.APIClient(base_url=daemon.host, version="auto")
    with open(busybox_tar, "rb") as fh:
        raw = fh.read()
    ids = set()
    import bz2, lzma
    for name, data in (("gz", gzip.compress(raw)), ("bz2", bz2.compress(raw)), ("xz", lzma.compress(raw))):
        path = os.path.join(workdir, f"bb.tar.{name}")
        with open(path, "wb") as fh:
            fh.write(data)
        result = api.import_image(src=path, repository=f"bb-{name}", tag="1")
        ids.add(json.loads(result.strip().splitlines()[-1])["status"])
    assert len(ids) == 3  # three images (their configs differ by creation time) …
    client = docker.DockerClient(base_url=daemon.host, version="auto")
    tags = sorted(t for img in client.images.list() for t in img.tags)
    assert tags == ["bb-bz2:1", "bb-gz:1", "bb-xz:1"]
    # … sharing one layer, stored and extracted once
    layers = os.listdir(os.path.join(daemon.data_root, "image", "layers"))
    assert len(layers) == 1
    # fromSrc=URL, served on loopback
    import http.server
    import threading
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=workdir)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/bb.tar.gz"
        r = daemon.cli("import", url, "fromurl:v1", check=True)
        img = client.images.get("fromurl:v1")
        assert r.stdout.splitlines() == [f"Downloading from {url}", img.id]    # as moby streams it
        assert img.history()[0]["Comment"] == f"Imported from {url}"
        # a bad tar from a URL: moby has sent "Downloading from" already, so the failure is in the stream
        with open(os.path.join(workdir, "bad.tar"), "wb") as fh:
            fh.write(b"abc")
        before = _events(daemon)
        r = daemon.cli("import", f"http://127.0.0.1:{srv.server_port}/bad.tar", "fromurl:bad")
        assert r.returncode == 1 and r.stderr.strip() and "Error response" not in r.stderr, r.stderr
        assert _events(daemon) == before and len(client.images.list()) == 4
    finally:
        srv.shutdown()
        srv.server_close()
    client.close()
    api.close()


def test_tag_and_rmi_rules(daemon, busybox):
    import docker
    client = docker.DockerClient(base_url=daemon.host, version="auto")
    image = client.images.get("busybox")
    assert image.tag("registry.example:5000/team/bb", "v2") is True
    daemon.cli("tag", "busybox", "user/bb:latest", check=True)
    image.reload()
    assert sorted(image.tags) == ["busybox:latest", "registry.example:5000/team/bb:v2", "user/bb:latest"]
    assert client.images.get("docker.io/library/busybox:latest").id == image.id
    r = daemon.cli("rmi", "user/bb")
    assert r.returncode == 0 and r.stdout.strip() == "Untagged: user/bb:latest"
    r = daemon.cli("rmi", image.id[7:19])
    assert r.returncode == 1
    assert f"conflict: unable to delete {image.id[7:19]} (must be forced) - image is referenced in multiple " \
           "repositories" in r.stderr
    blobs_before = _blob_count(daemon)
    r = daemon.cli("rmi", "-f", image.id, check=True)
    lines = r.stdout.splitlines()
    assert "Untagged: busybox:latest" in lines and f"Deleted: {image.id}" in lines
    assert client.images.list() == []
    assert _blob_count(daemon) == blobs_before - 2          # config + layer blob freed
    assert os.listdir(os.path.join(daemon.data_root, "image", "layers")) == []
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("busybox")
    acts = [line.split()[0] for line in _events(daemon, "type=image")]
    assert acts[-3:] == ["untag", "untag", "delete"]
    client.close()


def test_bad_references_and_unknown_images(daemon, busybox):
    import docker
    api = docker.APIClient(base_url=daemon.host, version="auto")
    for bad, message in (("Busybox:x", "must be lowercase"), ("bad::ref", "invalid reference format")):
        r = daemon.cli("tag", "busybox", bad)
        assert r.returncode == 1 and "invalid reference format" in r.stderr
        with pytest.raises(docker.errors.APIError) as err:
            api.tag("busybox", bad.split(":")[0], bad.split(":", 1)[1] or None)
        assert err.value.response.status_code == 400 and message in str(err.value)
    api.close()
    r = daemon.cli("inspect", "--type", "image", "nosuch")
    assert r.returncode == 1 and "No such image: nosuch" in r.stderr
    r = daemon.cli("rmi", "nosuch")
    assert r.returncode == 1 and "No such image: nosuch" in r.stderr
    r = daemon.cli("history", "nosuch")
    assert r.returncode == 1


def test_images_filters_and_quiet(daemon, busybox, busybox_tar):
    other = daemon.cli("import", "-c", "LABEL x=1", busybox_tar, check=True).stdout.strip()   # dangling
    q = daemon.cli("images", "-q", check=True).stdout.split()
    assert sorted(q) == sorted([busybox[7:19], other[7:19]])
    dangling = daemon.cli("images", "-q", "-f", "dangling=true", check=True).stdout.split()
    assert dangling == [other[7:19]]
    assert daemon.cli("images", "-q", "-f", "label=x=1", check=True).stdout.split() == [other[7:19]]
    assert daemon.cli("images", "-q", "busybox", check=True).stdout.split() == [busybox[7:19]]
    assert daemon.cli("images", "-q", "-f", "reference=busy*", check=True).stdout.split() == [busybox[7:19]]
    r = daemon.cli("rmi", *dangling, check=True)
    assert f"Deleted: {other}" in r.stdout
    r = daemon.cli("images", "-f", "bogus=1")
    assert r.returncode == 1 and "invalid filter 'bogus'" in r.stderr


def test_save_load_roundtrip_cli_and_docker_py(daemon, busybox, workdir):
    import docker
    daemon.cli("tag", "busybox", "busybox:two", check=True)
    archive = os.path.join(workdir, "out.tar")
    daemon.cli("save", "-o", archive, "busybox:latest", "busybox:two", check=True)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert "oci-layout" in names and "repositories" in names
    assert manifest[0]["RepoTags"] == ["busybox:latest", "busybox:two"]
    assert len([n for n in names if n.startswith("blobs/sha256/") and len(n) == 77]) == 3   # layer, config, manifest
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/library/busybox:latest"
    daemon.cli("rmi", "busybox:latest", "busybox:two", check=True)
    r = daemon.cli("load", "-i", archive, check=True)
    assert r.stdout.splitlines() == ["Loaded image: busybox:latest", "Loaded image: busybox:two"]
    client = docker.DockerClient(base_url=daemon.host, version="auto")
    assert client.images.get("busybox:two").id == busybox
    data = b"".join(client.images.get("busybox").save(named=True))
    client.images.get("busybox").tag("kept")  # keep one name so the image survives the next rmi
    client.images.remove("busybox:latest")
    client.images.remove("busybox:two")
    loaded = client.images.load(data)
    assert [img.id for img in loaded] == [busybox]
    assert "save" in {line.split()[0] for line in _events(daemon, "type=image")}
    assert "load" in {line.split()[0] for line in _events(daemon, "type=image")}
    client.close()


def test_save_load_two_images_sharing_a_layer(daemon, busybox, busybox_tar, workdir):
    other = daemon.cli("import", "-c", "CMD [\"true\"]", busybox_tar, "other:1", check=True).stdout.strip()
    archive = os.path.join(workdir, "two.tar")
    daemon.cli("save", "-o", archive, "busybox", "other:1", check=True)
    with tarfile.open(archive) as tar:
        layer_blobs = {n for n in tar.getnames() if n.startswith("blobs/sha256/") and tar.getmember(n).size > 10**6}
    assert len(layer_blobs) == 1                                  # the shared layer is written once
    daemon.cli("rmi", "busybox", "other:1", check=True)
    r = daemon.cli("load", "-i", archive, check=True)
    assert sorted(r.stdout.splitlines()) == ["Loaded image: busybox:latest", "Loaded image: other:1"]
    ids = daemon.cli("images", "-q", "--no-trunc", check=True).stdout.split()
    assert sorted(ids) == sorted([busybox, other])
    assert len(os.listdir(os.path.join(daemon.data_root, "image", "layers"))) == 1


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_skopeo_reads_our_archives_and_we_load_skopeos(daemon, busybox, workdir):
    ours = os.path.join(workdir, "ours.tar")
    daemon.cli("save", "-o", ours, "busybox", check=True)
    info = json.loads(subprocess.run([SKOPEO, "inspect", f"docker-archive:{ours}"], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["Os"] == "linux" and len(info["Layers"]) == 1
    oci_dir = os.path.join(workdir, "oci")
    subprocess.run([SKOPEO, "copy", "-q", f"docker-archive:{ours}", f"oci:{oci_dir}:bb"], check=True)
    assert os.path.exists(os.path.join(oci_dir, "index.json"))
    for target, name in ((f"oci-archive:{workdir}/sk-oci.tar:skopeo/oci:v1", "skopeo/oci:v1"),
                         (f"docker-archive:{workdir}/sk-docker.tar:skopeo/docker:v1", "skopeo/docker:v1")):
        subprocess.run([SKOPEO, "copy", "-q", f"docker-archive:{ours}", target], check=True)
        r = daemon.cli("load", "-i", target.split(":")[1], check=True)
        assert r.stdout.strip() in (f"Loaded image: {name}", f"Loaded image ID: {busybox}"), r.stdout
    r = daemon.cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", check=True)
    assert f"skopeo/docker:v1 {busybox[7:19]}" in r.stdout.splitlines()


def _tar_with(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _entry(name, data=b"x", type_=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    info.size = len(data) if type_ == tarfile.REGTYPE else 0
    return info, data if type_ == tarfile.REGTYPE else None


@pytest.mark.parametrize("entries,message", [
    ([_entry("../evil")], "escapes"),
    ([_entry("/abs")], "absolute"),
    ([_entry("link", type_=tarfile.SYMTYPE, linkname="/tmp"), _entry("link/evil")], "symlink"),
    ([_entry("dev", type_=tarfile.CHRTYPE)], "device"),
])
def test_import_refuses_bad_tars_and_changes_nothing(daemon, entries, message):
    import docker
    before_events = _events(daemon)
    api = docker.APIClient(base_url=daemon.host, version="auto")
    with pytest.raises(docker.errors.APIError) as err:
        api.import_image_from_data(_tar_with(entries), repository="bad")
    assert err.value.response.status_code == 400 and message in str(err.value)
    assert api.images() == [] and _events(daemon) == before_events
    assert os.listdir(os.path.join(daemon.data_root, "image", "tmp")) == []
    assert not os.path.exists("/tmp/evil")
    api.close()


def test_load_refuses_broken_archives(daemon, busybox, workdir):
    good = os.path.join(workdir, "good.tar")
    daemon.cli("save", "-o", good, "busybox", check=True)
    with open(good, "rb") as fh:
        data = fh.read()
    daemon.cli("rmi", "busybox", check=True)
    before = _events(daemon)
    with tarfile.open(good) as tar:
        members = {m.name: (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()}
    manifest = json.loads(members["manifest.json"][1])
    config_name = manifest[0]["Config"]
    layer_name = manifest[0]["Layers"][0]

    def rebuild(drop=(), replace=None):
        entries = []
        for name, (m, content) in members.items():
            if name in drop:
                continue
            if replace and name in replace:
                content = replace[name]
                m.size = len(content)
            entries.append((m, content))
        return _tar_with(entries)

    bad_config = json.loads(members[config_name][1])
    bad_config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    cases = {
        "truncated": data[: len(data) // 2],
        "missing blob": rebuild(drop={layer_name}),
        "diff_id mismatch": rebuild(replace={config_name: json.dumps(bad_config).encode()}),
        "garbage": b"not a tar at all" * 100,
    }
    for label, payload in cases.items():
        path = os.path.join(workdir, "bad.tar")
        with open(path, "wb") as fh:
            fh.write(payload)
        r = daemon.cli("load", "-i", path)
        # a 200 whose last message is the error (moby's convention): printed as it is, exit 1
        assert r.returncode == 1 and r.stderr.strip() and r.stdout == "", (label, r.stderr)
        assert daemon.cli("images", "-q", check=True).stdout == "", label
        assert os.listdir(os.path.join(daemon.data_root, "image", "layers")) == [], label
    assert _events(daemon) == before


def test_load_of_garbage_raises_image_load_error_and_changes_nothing(daemon, busybox, workdir):
    """docker-py's images.load raises ImageLoadError only for an errorDetail message in a 200 stream."""
    import docker
    client = docker.DockerClient(base_url=daemon.host, version="auto", timeout=30)
    data = b"".join(client.images.get("busybox").save(named=True))
    client.images.remove("busybox")
    before = _events(daemon)
    layers = os.listdir(os.path.join(daemon.data_root, "image", "layers"))
    for bad in (b"abc", data[: len(data) // 3]):
        with pytest.raises(docker.errors.ImageLoadError) as info:
            client.images.load(bad)
        assert str(info.value)
        assert client.images.list() == [] and _events(daemon) == before
        assert os.listdir(os.path.join(daemon.data_root, "image", "layers")) == layers
        assert os.listdir(os.path.join(daemon.data_root, "image", "tmp")) == []
    assert [img.id for img in client.images.load(data)] == [busybox]     # a good load still works
    client.close()


@needs_docker_cli
def test_docker_cli_load_and_import_of_a_bad_tar(daemon, busybox, workdir):
    path = os.path.join(workdir, "bad.tar")
    with open(path, "wb") as fh:
        fh.write(b"abc")
    before = _events(daemon)
    r = docker_cli(daemon, "load", "-i", path)
    assert r.returncode != 0 and "invalid tar" in r.stderr, r.stderr
    r = docker_cli(daemon, "import", path, "bad:1")
    assert r.returncode != 0 and "Error response from daemon: " in r.stderr and "invalid tar" in r.stderr, r.stderr
    r = daemon.cli("import", path, "bad:1")
    assert r.returncode == 1 and r.stderr.startswith("Error response from daemon: "), r.stderr
    assert _events(daemon) == before
    assert daemon.cli("images", "-q", check=True).stdout.split() == [busybox[7:19]]


def test_load_killed_midway_leaves_no_half_image(make_daemon, busybox_tar, workdir):
    d = make_daemon().start()
    d.cli("import", busybox_tar, "busybox:latest", check=True)
    archive = os.path.join(workdir, "a.tar")
    d.cli("save", "-o", archive, "busybox", check=True)
    d.cli("rmi", "busybox", check=True)
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.sock)
    size = os.path.getsize(archive)
    s.sendall(f"POST /v1.45/images/load HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
    with open(archive, "rb") as fh:
        s.sendall(fh.read(size * 2 // 3))
    time.sleep(0.5)
    d.kill9()
    s.close()
    d.start()
    assert d.cli("images", "-q", "-a", check=True).stdout == ""
    assert os.listdir(os.path.join(d.data_root, "image", "tmp")) == []
    assert os.listdir(os.path.join(d.data_root, "image", "layers")) == []
    d.stop()


@needs_docker_cli
def test_docker_cli_image_commands(daemon, busybox_tar, workdir):
    r = docker_cli(daemon, "import", busybox_tar, "dbb:1")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    r = docker_cli(daemon, "images")
    assert r.returncode == 0 and "dbb" in r.stdout and image_id[7:19] in r.stdout
    assert docker_cli(daemon, "tag", "dbb:1", "dbb:2").returncode == 0
    r = docker_cli(daemon, "inspect", "-f", "{{.Id}} {{.Os}}", "dbb:2")
    assert r.returncode == 0 and r.stdout.strip() == f"{image_id} linux", r.stderr
    r = docker_cli(daemon, "history", "dbb:1")
    assert r.returncode == 0 and "Imported from" in r.stdout
    path = os.path.join(workdir, "d.tar")
    assert docker_cli(daemon, "save", "-o", path, "dbb:1").returncode == 0
    r = docker_cli(daemon, "rmi", "dbb:1", "dbb:2")
    assert r.returncode == 0 and f"Deleted: {image_id}" in r.stdout, r.stderr
    r = docker_cli(daemon, "load", "-i", path)
    assert r.returncode == 0 and "Loaded image: dbb:1" in r.stdout, r.stderr
    r = docker_cli(daemon, "rmi", "nosuch")
    assert r.returncode == 1 and "No such image: nosuch" in r.stderr
