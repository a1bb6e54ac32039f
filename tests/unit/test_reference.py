import dataclasses
import subprocess
import sys

import pytest

from app.common.reference import (Reference, ReferenceError, is_image_id, normalize_name, parse_docker_ref,
                                  parse_reference, split_repo_tag, validate_tag)

H64 = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
DG = "sha256:" + H64

# input, domain, path, tag, digest, familiar(), full()
VALID = [
    ("busybox", "docker.io", "library/busybox", None, None,
     "busybox", "docker.io/library/busybox"),
    ("busybox:latest", "docker.io", "library/busybox", "latest", None,
     "busybox:latest", "docker.io/library/busybox:latest"),
    ("library/busybox", "docker.io", "library/busybox", None, None,
     "busybox", "docker.io/library/busybox"),
    ("library/busybox:1.36", "docker.io", "library/busybox", "1.36", None,
     "busybox:1.36", "docker.io/library/busybox:1.36"),
    ("docker.io/busybox", "docker.io", "library/busybox", None, None,
     "busybox", "docker.io/library/busybox"),
    ("docker.io/library/busybox:1", "docker.io", "library/busybox", "1", None,
     "busybox:1", "docker.io/library/busybox:1"),
    ("index.docker.io/busybox", "docker.io", "library/busybox", None, None,
     "busybox", "docker.io/library/busybox"),
    ("index.docker.io/library/busybox:x", "docker.io", "library/busybox", "x", None,
     "busybox:x", "docker.io/library/busybox:x"),
    ("index.docker.io/user/img", "docker.io", "user/img", None, None,
     "user/img", "docker.io/user/img"),
    ("user/img:tag", "docker.io", "user/img", "tag", None,
     "user/img:tag", "docker.io/user/img:tag"),
    ("docker.io/user/img", "docker.io", "user/img", None, None,
     "user/img", "docker.io/user/img"),
    ("a/b/c/d", "docker.io", "a/b/c/d", None, None, "a/b/c/d", "docker.io/a/b/c/d"),
    # "library/" is only dropped for one-level official names
    ("library/a/b", "docker.io", "library/a/b", None, None, "library/a/b", "docker.io/library/a/b"),
    ("localhost/a", "localhost", "a", None, None, "localhost/a", "localhost/a"),
    ("localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag", None,
     "localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
    ("127.0.0.1:5000/foo/bar", "127.0.0.1:5000", "foo/bar", None, None,
     "127.0.0.1:5000/foo/bar", "127.0.0.1:5000/foo/bar"),
    ("127.0.0.1/busybox", "127.0.0.1", "busybox", None, None,
     "127.0.0.1/busybox", "127.0.0.1/busybox"),
    ("[::1]:5000/img", "[::1]:5000", "img", None, None, "[::1]:5000/img", "[::1]:5000/img"),
    ("[2001:db8::1]/img:v1", "[2001:db8::1]", "img", "v1", None,
     "[2001:db8::1]/img:v1", "[2001:db8::1]/img:v1"),
    ("example.com/a", "example.com", "a", None, None, "example.com/a", "example.com/a"),
    ("example.com/library/a", "example.com", "library/a", None, None,
     "example.com/library/a", "example.com/library/a"),
    ("sub-domain.example.com/x/y:z", "sub-domain.example.com", "x/y", "z", None,
     "sub-domain.example.com/x/y:z", "sub-domain.example.com/x/y:z"),
    ("registry.example:5000/name@" + DG, "registry.example:5000", "name", None, DG,
     "registry.example:5000/name@" + DG, "registry.example:5000/name@" + DG),
    # a port-only "domain" needs a ":" or "." -- a bare lowercase word is a Hub namespace
    ("myhost:5000/img", "myhost:5000", "img", None, None, "myhost:5000/img", "myhost:5000/img"),
    ("myhost/img", "docker.io", "myhost/img", None, None, "myhost/img", "docker.io/myhost/img"),
    # uppercase first element is a domain
    ("Example/img", "Example", "img", None, None, "Example/img", "Example/img"),
    ("EXAMPLE.COM:443/img", "EXAMPLE.COM:443", "img", None, None, "EXAMPLE.COM:443/img", "EXAMPLE.COM:443/img"),
    # separators
    ("a.b", "docker.io", "library/a.b", None, None, "a.b", "docker.io/library/a.b"),
    ("a_b", "docker.io", "library/a_b", None, None, "a_b", "docker.io/library/a_b"),
    ("a__b", "docker.io", "library/a__b", None, None, "a__b", "docker.io/library/a__b"),
    ("a-b", "docker.io", "library/a-b", None, None, "a-b", "docker.io/library/a-b"),
    ("a---b", "docker.io", "library/a---b", None, None, "a---b", "docker.io/library/a---b"),
    ("x/a0.b1_c2__d3-e4", "docker.io", "x/a0.b1_c2__d3-e4", None, None,
     "x/a0.b1_c2__d3-e4", "docker.io/x/a0.b1_c2__d3-e4"),
    ("0/1:2", "docker.io", "0/1", "2", None, "0/1:2", "docker.io/0/1:2"),
    # tags
    ("img:Tag_1.2-rc", "docker.io", "library/img", "Tag_1.2-rc", None,
     "img:Tag_1.2-rc", "docker.io/library/img:Tag_1.2-rc"),
    ("img:_x", "docker.io", "library/img", "_x", None, "img:_x", "docker.io/library/img:_x"),
    ("img:" + "t" * 128, "docker.io", "library/img", "t" * 128, None,
     "img:" + "t" * 128, "docker.io/library/img:" + "t" * 128),
    # "sha256:<hex>" alone is a name "sha256" with a 64-char tag, as in Docker
    (DG, "docker.io", "library/sha256", H64, None, "sha256:" + H64, "docker.io/library/sha256:" + H64),
    # digests
    ("busybox@" + DG, "docker.io", "library/busybox", None, DG,
     "busybox@" + DG, "docker.io/library/busybox@" + DG),
    ("busybox:latest@" + DG, "docker.io", "library/busybox", "latest", DG,
     "busybox:latest@" + DG, "docker.io/library/busybox:latest@" + DG),
    ("docker.io/library/busybox:latest@" + DG, "docker.io", "library/busybox", "latest", DG,
     "busybox:latest@" + DG, "docker.io/library/busybox:latest@" + DG),
    ("a/b@sha512:" + "0" * 128, "docker.io", "a/b", None, "sha512:" + "0" * 128,
     "a/b@sha512:" + "0" * 128, "docker.io/a/b@sha512:" + "0" * 128),
    # 64 hex in a path with other chars is fine
    ("user/" + H64, "docker.io", "user/" + H64, None, None, "user/" + H64, "docker.io/user/" + H64),
]


@pytest.mark.parametrize("text,domain,path,tag,digest,familiar,full", VALID, ids=[v[0][:50] for v in VALID])
def test_parse_valid(text, domain, path, tag, digest, familiar, full):
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.familiar() == familiar
    assert ref.full() == full
    assert str(ref) == full
    assert ref.name == f"{domain}/{path}"
    # both forms re-parse to the same reference
    assert parse_reference(familiar) == ref
    assert parse_reference(full) == ref


INVALID = [
    ("", "invalid reference format"),
    (":", "invalid reference format"),
    ("/", "invalid reference format"),
    ("@", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("busybox@", "invalid reference format"),
    ("a:b:c", "invalid reference format"),
    ("a/", "invalid reference format"),
    ("/a", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("-a", "invalid reference format"),
    ("a-", "invalid reference format"),
    (".a", "invalid reference format"),
    ("a.", "invalid reference format"),
    ("_a", "invalid reference format"),
    ("a..b", "invalid reference format"),
    ("a___b", "invalid reference format"),
    ("a._b", "invalid reference format"),
    ("a b", "invalid reference format"),
    ("a$b", "invalid reference format"),
    ("a\n", "invalid reference format"),
    ("img:-tag", "invalid reference format"),
    ("img:.tag", "invalid reference format"),
    ("img:t@g", "invalid reference format"),
    ("img:ta\u00e9", "invalid reference format"),
    ("img:" + "t" * 129, "invalid reference format"),
    ("localhost:/img", "invalid reference format"),
    ("localhost:port/img", "invalid reference format"),
    ("-host.com/img", "invalid reference format"),
    ("host-.com/img", "invalid reference format"),
    ("host..com/img", "invalid reference format"),
    ("[::1/img", "invalid reference format"),
    ("example.com/", "invalid reference format"),
    ("busybox@sha256", "invalid reference format"),
    ("busybox@sha256:", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@sha256:" + "a" * 31, "invalid reference format"),
    ("busybox@sha256:" + "g" * 64, "invalid reference format"),
    ("busybox@" + H64, "invalid reference format"),
    ("busybox@" + DG + ":tag", "invalid reference format"),
    # grammar-valid digests rejected by the digest check (go-digest wording)
    ("busybox@sha256:" + "a" * 32, "invalid checksum digest length"),
    ("busybox@sha256:" + "a" * 65, "invalid checksum digest length"),
    ("busybox@sha256:" + H64.upper(), "invalid checksum digest format"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    # lowercase rules
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("BUSYBOX:latest", "invalid reference format: repository name (library/BUSYBOX) must be lowercase"),
    ("user/Img", "invalid reference format: repository name (user/Img) must be lowercase"),
    ("docker.io/library/Busybox:1", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("localhost:5000/Foo/bar", "invalid reference format: repository name (Foo/bar) must be lowercase"),
    # IDs
    (H64, f"invalid repository name ({H64}), cannot specify 64-byte hexadecimal strings"),
    # length
    ("a" * 256, "repository name must not be more than 255 characters"),
    ("example.com/" + "a" * 244, "repository name must not be more than 255 characters"),
]


@pytest.mark.parametrize("text,message", INVALID, ids=[repr(v[0][:40]) for v in INVALID])
def test_parse_invalid(text, message):
    with pytest.raises(ReferenceError) as exc:
        parse_reference(text)
    assert str(exc.value) == message
    assert isinstance(exc.value, ValueError)


def test_name_length_boundary():
    # 255 chars including "docker.io/library/" is accepted
    name = "a" * (255 - len("docker.io/library/"))
    assert parse_reference(name).name == "docker.io/library/" + name
    with pytest.raises(ReferenceError):
        parse_reference(name + "a")


def test_dotted_first_element_that_is_not_a_valid_domain():
    # Docker quirk: "a.b_c" has a "." so it is split off as a domain, but it is not a valid
    # host, so the whole string matches as a domain-less path.
    ref = parse_reference("a.b_c/img:1")
    assert (ref.domain, ref.path, ref.tag) == ("", "a.b_c/img", "1")
    assert ref.name == "a.b_c/img"
    assert ref.familiar() == ref.full() == "a.b_c/img:1"


def test_non_string():
    with pytest.raises(ReferenceError):
        parse_reference(None)  # type: ignore[arg-type]


def test_reference_is_frozen_and_hashable():
    ref = parse_reference("busybox")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]
    assert {ref, parse_reference("docker.io/library/busybox")} == {ref}


@pytest.mark.parametrize("text,familiar_name,name", [
    ("busybox", "busybox", "docker.io/library/busybox"),
    ("library/busybox:1", "busybox", "docker.io/library/busybox"),
    ("user/img", "user/img", "docker.io/user/img"),
    ("library/a/b", "library/a/b", "docker.io/library/a/b"),
    ("localhost:5000/a/b", "localhost:5000/a/b", "localhost:5000/a/b"),
    ("quay.io/library/x", "quay.io/library/x", "quay.io/library/x"),
])
def test_names(text, familiar_name, name):
    ref = parse_reference(text)
    assert ref.familiar_name == familiar_name
    assert ref.name == name


def test_with_default_tag():
    assert parse_reference("busybox").with_default_tag().tag == "latest"
    assert parse_reference("busybox:1").with_default_tag().tag == "1"
    d = parse_reference("busybox@" + DG).with_default_tag()
    assert d.tag is None and d.digest == DG
    assert parse_reference("busybox").with_default_tag().full() == "docker.io/library/busybox:latest"


def test_direct_construction():
    ref = Reference(domain="docker.io", path="library/x", tag=None, digest=None)
    assert ref.familiar() == "x"
    assert Reference("example.com", "a/b", "t", None).full() == "example.com/a/b:t"


@pytest.mark.parametrize("text,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1", "docker.io/library/busybox:1"),
    ("busybox@" + DG, "docker.io/library/busybox@" + DG),
    ("busybox:1@" + DG, "docker.io/library/busybox@" + DG),
    ("localhost:5000/a", "localhost:5000/a:latest"),
])
def test_parse_docker_ref(text, expected):
    assert parse_docker_ref(text).full() == expected


@pytest.mark.parametrize("text,expected", [
    ("busybox", "busybox:latest"),
    ("docker.io/library/busybox", "busybox:latest"),
    ("index.docker.io/library/busybox:1", "busybox:1"),
    ("library/busybox", "busybox:latest"),
    ("docker.io/user/img:v", "user/img:v"),
    ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
    ("example.com/a", "example.com/a:latest"),
    ("busybox@" + DG, "busybox@" + DG),
    ("docker.io/library/busybox:1@" + DG, "busybox:1@" + DG),
])
def test_normalize_name(text, expected):
    assert normalize_name(text) == expected


def test_normalize_name_errors():
    with pytest.raises(ReferenceError, match="invalid reference format"):
        normalize_name("a:b:c")


@pytest.mark.parametrize("text,expected", [
    (DG, True),
    (H64, True),
    ("sha256:" + H64[:-1], False),
    (H64 + "0", False),
    ("sha256:" + H64.upper(), False),
    ("sha512:" + H64, False),
    ("busybox", False),
    ("", False),
    (None, False),
    (H64 + "\n", False),
])
def test_is_image_id(text, expected):
    assert is_image_id(text) is expected


@pytest.mark.parametrize("repo,tag,expected", [
    ("name:tag", "", ("name", "tag")),
    ("name:tag", None, ("name", "tag")),
    ("name", "", ("name", None)),
    ("name", None, ("name", None)),
    ("name", "v1", ("name", "v1")),
    ("name:tag", "other", ("name:tag", "other")),
    ("user/img:1.0", "", ("user/img", "1.0")),
    ("localhost:5000/a", "", ("localhost:5000/a", None)),
    ("localhost:5000/a:t", "", ("localhost:5000/a", "t")),
    ("localhost:5000/a/b:t", None, ("localhost:5000/a/b", "t")),
    ("name@" + DG, "", ("name@" + DG, None)),
    ("localhost:5000/a@" + DG, "", ("localhost:5000/a@" + DG, None)),
    ("name:", "", ("name", None)),
    ("", "", ("", None)),
])
def test_split_repo_tag(repo, tag, expected):
    assert split_repo_tag(repo, tag) == expected


@pytest.mark.parametrize("tag", ["latest", "1", "_", "A", "v1.2.3-rc_1", "x" * 128, "1.0.", "a--"])
def test_validate_tag_ok(tag):
    assert validate_tag(tag) is None


@pytest.mark.parametrize("tag", ["", "-a", ".a", "a:b", "a/b", "a@b", "x" * 129, "a b", "\u00e9", "a\n", None])
def test_validate_tag_bad(tag):
    with pytest.raises(ReferenceError) as exc:
        validate_tag(tag)
    assert str(exc.value) == "invalid tag format"


def test_module_is_stdlib_only():
    code = (
        "import sys; before = set(sys.modules); import app.common.reference; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(new - set(sys.stdlib_module_names) - {'app'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__file__.rsplit("/tests/", 1)[0])
    assert out.stdout.strip() == "[]", out.stdout
