"""Pure parts of volumes: -v / --mount / --tmpfs parsing (moby's rules and texts), the CLI's --mount
flag, OCI mounts, and the template's struct form of Mounts."""
import re

import pytest

from app.cli.gotemplate import GoStruct, render
from app.cli.volumes import parse_mount_flag
from app.errors import InvalidParameter
from app.runtime.volumes import mounts as mp


def test_parse_bind_forms():
    p = mp.parse_bind("/host/x/../y:/ctr:ro,rslave")
    assert (p["Type"], p["Source"], p["Destination"], p["RW"], p["Propagation"], p["Mode"]) == \
        ("bind", "/host/y", "/ctr", False, "rslave", "ro,rslave")
    p = mp.parse_bind("name:/data:nocopy")
    assert (p["Type"], p["Name"], p["CopyData"], p["Mode"]) == ("volume", "name", False, "nocopy")
    assert mp.parse_bind("/anon")["Anonymous"] is True
    assert mp.parse_bind("vol:/d")["Mode"] == "z"          # moby's setBindModeIfNull


@pytest.mark.parametrize("raw, message", [
    ("/a:/b:ro:x", "invalid volume specification: '/a:/b:ro:x'"),
    ("/a:ro", "invalid volume specification: '/a:ro'"),
    ("/a:/b:rw,ro", "invalid mode: rw,ro"),
    ("/a:/", "destination can't be '/'"),
    ("x:/b", "volume name is too short"),
    ("vol:/b:rshared", "field BindOptions must not be specified"),
])
def test_parse_bind_refusals(raw, message):
    with pytest.raises(InvalidParameter) as err:
        mp.parse_bind(raw)
    assert message in err.value.message


def test_tmpfs_and_oci_mounts():
    t = mp.parse_mount({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 3 << 20, "Mode": 0o1777,
                                                                        "Options": [["exec"]]}})
    assert t["Options"] == "mode=1777,size=3m,exec"
    (oci,) = mp.oci_mounts([t])
    assert oci["options"] == ["nosuid", "nodev", "mode=1777", "size=3m"]
    b = dict(mp.parse_bind("/h:/c:ro"), Source="/h")
    assert mp.oci_mounts([b])[0] == {"destination": "/c", "type": "bind", "source": "/h",
                                     "options": ["rbind", "rprivate", "ro"]}


def test_plan_order_and_duplicates():
    points = mp.plan_points({"Volumes": {"/a": {}}}, {"Binds": ["/h:/a"], "Tmpfs": {"/t": ""}}, {"/img": {}},
                            lambda ref: [])
    assert [(p["Destination"], p["Type"]) for p in points] == [("/a", "bind"), ("/img", "volume"), ("/t", "tmpfs")]
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /a"):
        mp.plan_points({}, {"Binds": ["/h:/a"], "Mounts": [{"Type": "volume", "Target": "/a"}]}, {}, lambda r: [])


def test_cli_mount_flag():
    assert parse_mount_flag("type=bind,src=/a,dst=/b,readonly,bind-propagation=rshared") == {
        "Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True, "BindOptions": {"Propagation": "rshared"}}
    assert parse_mount_flag("src=v,target=/d,volume-nocopy,volume-opt=type=tmpfs")["VolumeOptions"] == {
        "NoCopy": True, "DriverConfig": {"Options": {"type": "tmpfs"}}}
    assert parse_mount_flag("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=700")["TmpfsOptions"] == {
        "SizeBytes": 64 << 20, "Mode": 0o700}
    for bad, text in (("type=bind,src=/a", "target is required"), ("dst=/a,bogus=1", "unexpected key 'bogus'"),
                      ("type=tmpfs,dst=/a,bind-propagation=shared", "cannot mix 'bind-*' options"),
                      ("dst=/a,what", "invalid field 'what' must be a key=value pair")):
        with pytest.raises(ValueError, match=re.escape(text)):
            parse_mount_flag(bad)


def test_mounts_print_as_go_structs():
    m = GoStruct([("Type", "bind"), ("Name", ""), ("Source", "/h"), ("Destination", "/c"), ("Driver", ""),
                  ("Mode", "ro"), ("RW", False), ("Propagation", "rprivate")])
    assert render("{{.Mounts}}", {"Mounts": [m]}) == "[{bind  /h /c  ro false rprivate}]"
