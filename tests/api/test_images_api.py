"""Image endpoints through the Flask test client: conflicts with containers, errors, shapes."""
import json
import os

import pytest

from app.events.model import NewEvent
from tests.tarutil import tar_bytes as _tar


@pytest.fixture
def image(api):
    r = api.post("/v1.45/images/create?fromSrc=-&repo=busybox:latest", data=_tar({"bin/sh": b"#!"}))
    assert r.status_code == 200, r.data
    return json.loads(r.data.decode().strip().splitlines()[-1])["status"]


def _container(engine, image_id, cid, running):
    engine.store.append([NewEvent("container", "create", cid, {"name": f"c{cid[:4]}", "image": "busybox"},
                                  payload={"image_id": image_id})])
    if running:
        engine.store.append([NewEvent("container", "start", cid, {"name": f"c{cid[:4]}"})])


def test_import_response_and_list_shape(api, image):
    [row] = api.get("/images/json").get_json()
    assert row["Id"] == image and row["RepoTags"] == ["busybox:latest"] and row["RepoDigests"] == []
    assert set(row) >= {"Containers", "Created", "Labels", "ParentId", "SharedSize", "Size"}
    info = api.get(f"/v1.45/images/{image}/json").get_json()
    assert "VirtualSize" not in info and "Container" not in info
    assert "VirtualSize" in api.get(f"/v1.41/images/{image}/json").get_json()
    assert api.get("/images/busybox/json").get_json()["Id"] == image
    assert api.get(f"/images/{image[7:15]}/json").get_json()["Id"] == image


def test_image_used_by_stopped_container_needs_force(api, engine, image):
    _container(engine, image, "a" * 64, running=False)
    r = api.delete("/images/busybox")
    assert r.status_code == 409
    assert r.get_json()["message"] == (
        f'conflict: unable to remove repository reference "busybox" (must force) - container aaaaaaaaaaaa '
        f"is using its referenced image {image[7:19]}")
    r = api.delete(f"/images/{image}")
    assert r.status_code == 409 and "(must be forced) - image is being used by stopped container" in \
        r.get_json()["message"]
    r = api.delete(f"/images/{image}?force=1")
    assert r.status_code == 200 and {"Deleted": image} in r.get_json()


def test_image_used_by_running_container_cannot_be_forced(api, engine, image):
    _container(engine, image, "b" * 64, running=True)
    r = api.delete(f"/images/{image}?force=True")
    assert r.status_code == 409
    assert r.get_json()["message"] == (f"conflict: unable to delete {image[7:19]} (cannot be forced) - image is "
                                       "being used by running container bbbbbbbbbbbb")
    # by name with force: the name goes, the image stays (dangling), as Docker does
    r = api.delete("/images/busybox:latest?force=1")
    assert r.status_code == 200 and r.get_json() == [{"Untagged": "busybox:latest"}]
    assert api.get(f"/images/{image}/json").status_code == 200


@pytest.mark.parametrize("method,path,status,message", [
    ("get", "/images/nosuch/json", 404, "No such image: nosuch"),
    ("get", "/images/nosuch/history", 404, "No such image: nosuch"),
    ("delete", "/images/nosuch", 404, "No such image: nosuch"),
    ("get", "/images/get?names=nosuch", 404, "No such image: nosuch"),
    ("post", "/images/busybox/tag?repo=UPPER", 400, "must be lowercase"),
    ("post", "/images/busybox/tag", 400, "repo"),
    ("post", "/images/create?fromSrc=-&repo=x&changes=RUN%20true", 400, "RUN is not a valid change command"),
    ("post", "/images/create?fromSrc=ftp://x/y", 400, "invalid import source"),
    ("post", "/images/create", 400, "fromSrc or fromImage is required"),
    ("get", '/images/json?filters={"dangling":["maybe"]}', 400, "invalid filter"),
])
def test_errors(api, engine, image, method, path, status, message):
    before = engine.store.last_seq
    r = getattr(api, method)(path)
    assert r.status_code == status
    assert r.headers["Content-Type"] == "application/json"
    assert message in r.get_json()["message"]
    assert engine.store.last_seq == before


@pytest.mark.parametrize("body", [b"", b"abc", _tar({"x": b"1"})])
def test_a_failed_load_is_a_200_with_an_error_message(api, engine, image, body):
    """moby's convention: the load's failure is the last jsonmessage of a 200 (docker-py raises
    ImageLoadError on it); and it changed nothing."""
    before = engine.store.last_seq
    images_before = api.get("/images/json").get_json()
    r = api.post("/v1.45/images/load", data=body)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    [msg] = [json.loads(line) for line in r.data.decode().splitlines()]
    assert set(msg) == {"errorDetail", "error"} and msg["error"] == msg["errorDetail"]["message"] != ""
    assert engine.store.last_seq == before and api.get("/images/json").get_json() == images_before
    assert os.listdir(engine.images.store.tmp) == []


def test_a_bad_query_on_load_is_still_a_400(api):
    r = api.post("/images/load?quiet=maybe", data=b"abc")
    assert r.status_code == 400 and r.get_json()["message"]


def test_tag_moves_a_reference_between_images(api, engine, image):
    r = api.post("/images/create?fromSrc=-", data=_tar({"other": b"1"}))
    other = json.loads(r.data.decode().strip())["status"]
    assert api.post(f"/images/{other}/tag?repo=busybox&tag=latest").status_code == 201
    assert api.get("/images/busybox/json").get_json()["Id"] == other
    assert api.get(f"/images/{image}/json").get_json()["RepoTags"] == []
