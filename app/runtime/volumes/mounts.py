"""A create request's Binds, Mounts, Tmpfs, VolumesFrom, Config.Volumes and the image's VOLUMEs →
the container's mount points (moby's registerMountPoints order), and mount points → OCI mounts.

Pure: parsing and validation with moby's texts (daemon/volume/mounts/linux_parser.go). A mount point
is a plain dict, stored in the container's create payload and projected by app/projections/volumes.py:
  Type (volume|bind|tmpfs), Name, Source, Destination, Driver, Mode, RW, Propagation,
  CopyData (copy the image's content in on first use), Anonymous, Options (tmpfs data), Spec (origin)
"""
from __future__ import annotations

import posixpath
import re

from app.errors import InvalidParameter

VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
DEFAULT_PROPAGATION = "rprivate"
_RW = ("ro", "rw")
_LABEL = ("z", "Z")
_COPY = ("nocopy",)
_CONSISTENCY = ("consistent", "cached", "delegated")
TMPFS_EXTRA = ("exec", "noexec")


def invalid_spec(raw: str) -> InvalidParameter:
    return InvalidParameter(f"invalid volume specification: '{raw}'")


def valid_mode(mode: str) -> bool:
    """moby's linuxValidMountMode: each kind at most once, nothing unknown."""
    if mode == "":
        return True
    counts = {}
    for word in mode.split(","):
        for kind, words in (("rw", _RW), ("label", _LABEL), ("prop", PROPAGATIONS), ("copy", _COPY),
                            ("consistency", _CONSISTENCY)):
            if word in words:
                counts[kind] = counts.get(kind, 0) + 1
                break
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _mode_words(mode: str) -> list[str]:
    return [w for w in mode.split(",") if w] if mode else []


def check_target(target: str, mount_type: str | None = None) -> str:
    def fail(message: str):
        if mount_type:
            return InvalidParameter(f'invalid mount config for type "{mount_type}": {message}')
        return InvalidParameter(message)
    if not target:
        raise fail("field Target must not be empty")
    if posixpath.normpath(target) == "/":
        raise fail("invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise fail(f"invalid mount path: '{target}' mount path must be absolute")
    return posixpath.normpath(target)


def check_volume_name(name: str) -> None:
    if len(name) < 2:
        raise InvalidParameter("volume name is too short, names should be at least two alphanumeric characters")
    if not VOLUME_NAME.match(name):
        raise InvalidParameter(f'"{name}" includes invalid characters for a local volume name, only '
                               '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                               "directory, use absolute path")


def _point(kind: str, destination: str, *, name: str = "", source: str = "", rw: bool = True, mode: str = "",
           propagation: str = "", copy: bool = False, anonymous: bool = False, driver: str = "",
           options: str = "", spec: str = "", labels: dict | None = None, driver_opts: dict | None = None) -> dict:
    return {"Type": kind, "Name": name, "Source": source, "Destination": destination,
            "Driver": driver, "Mode": mode, "RW": rw,
            "Propagation": propagation, "CopyData": copy, "Anonymous": anonymous, "Options": options,
            "Spec": spec, "Labels": labels or {}, "DriverOpts": driver_opts or {}}


def parse_bind(raw: str) -> dict:
    """`-v` / HostConfig.Binds: `[src:]dst[:mode]` (moby's ParseMountRaw)."""
    parts = raw.split(":", 3)
    if not parts[0]:
        raise invalid_spec(raw)
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if valid_mode(parts[1]):
            raise invalid_spec(raw)
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise invalid_spec(raw)
    if not valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    words = _mode_words(mode)
    rw = "ro" not in words
    try:
        destination = check_target(target)
    except InvalidParameter as err:
        raise InvalidParameter(f"{invalid_spec(raw).message}: {err.message}") from None
    propagation = next((w for w in words if w in PROPAGATIONS), "")
    if source.startswith("/"):
        return _point("bind", destination, source=posixpath.normpath(source), rw=rw, mode=mode,
                      propagation=propagation or DEFAULT_PROPAGATION, spec="bind")
    if propagation:
        raise InvalidParameter(f"{invalid_spec(raw).message}: invalid mount config for type \"volume\": "
                               "field BindOptions must not be specified")
    if source:
        check_volume_name(source)
    return _point("volume", destination, name=source, rw=rw, mode=mode or "z", copy="nocopy" not in words,
                  anonymous=not source, spec="bind")


def relabel_warnings(host_config: dict, selinux: bool) -> list[str]:
    """`-v src:dst:z|Z` asks for an SELinux relabel of the source. berth sets no SELinux labels (no
    MountLabel), so, as dockerd without --selinux-enabled (its default) and on any host without
    SELinux, there is nothing to relabel: the option is accepted and has no effect. Docker says
    nothing; berth says so in the create response's Warnings (the docker CLI prints them)."""
    out = []
    for raw in host_config.get("Binds") or []:
        for word in _mode_words(parse_bind(raw)["Mode"]):
            if word in _LABEL:
                why = ("berth sets no SELinux labels, as dockerd without --selinux-enabled" if selinux
                       else "SELinux is not enabled on this host")
                out.append(f'"{raw}": the "{word}" option (SELinux relabeling) has no effect: {why}')
    return out


def _size_text(size: int) -> str:
    for suffix, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % div == 0:
            return f"{size // div}{suffix}"
    return str(size)


def parse_mount(m: dict) -> dict:
    """HostConfig.Mounts (`--mount`), moby's validateMountConfig and parseMountSpec."""
    kind = m.get("Type") or ""
    source, target = m.get("Source") or "", m.get("Target") or ""

    def fail(message: str) -> InvalidParameter:
        return InvalidParameter(f'invalid mount config for type "{kind}": {message}')
    if kind not in ("bind", "volume", "tmpfs"):
        if kind in ("npipe", "cluster", "image"):
            raise InvalidParameter(f"berth does not support mounts of type {kind} yet")
        raise fail("mount type unknown")
    for field, allowed in (("BindOptions", "bind"), ("VolumeOptions", "volume"), ("TmpfsOptions", "tmpfs"),
                           ("ImageOptions", "image"), ("ClusterOptions", "cluster")):
        if m.get(field) is not None and kind != allowed:
            raise fail(f"field {field} must not be specified")
    destination = check_target(target, kind)
    rw = not m.get("ReadOnly")
    if kind == "bind":
        if not source:
            raise fail("field Source must not be empty")
        if not source.startswith("/"):
            raise fail(f"invalid mount path: '{source}' mount path must be absolute")
        opts = m.get("BindOptions") or {}
        propagation = opts.get("Propagation") or DEFAULT_PROPAGATION
        if propagation not in PROPAGATIONS:
            raise fail(f"invalid propagation mode: {propagation}")
        for key in ("NonRecursive", "ReadOnlyNonRecursive", "ReadOnlyForceRecursive"):
            if opts.get(key):
                raise InvalidParameter(f"berth does not support BindOptions.{key} yet")
        point = _point("bind", destination, source=posixpath.normpath(source), rw=rw, propagation=propagation,
                       spec="mount")
        point["CreateMountpoint"] = bool(opts.get("CreateMountpoint"))
        return point
    if kind == "volume":
        opts = m.get("VolumeOptions") or {}
        if opts.get("Subpath"):
            if not source:
                raise fail("must not set Subpath when using anonymous volumes")
            raise InvalidParameter("berth does not support VolumeOptions.Subpath yet")
        if source:
            check_volume_name(source)
        driver_cfg = opts.get("DriverConfig") or {}
        driver = driver_cfg.get("Name") or ""
        return _point("volume", destination, name=source, rw=rw, mode="z", copy=not opts.get("NoCopy"),
                      anonymous=not source, driver=driver, spec="mount", labels=opts.get("Labels") or {},
                      driver_opts=driver_cfg.get("Options") or {})
    if source:
        raise fail("field Source must not be specified")
    opts = m.get("TmpfsOptions") or {}
    words = [] if rw else ["ro"]
    if opts.get("Mode"):
        words.append(f"mode={int(opts['Mode']):o}")
    if opts.get("SizeBytes"):
        if int(opts["SizeBytes"]) < 0:
            raise fail("invalid tmpfs size")
        words.append(f"size={_size_text(int(opts['SizeBytes']))}")
    for option in opts.get("Options") or []:
        if not 1 <= len(option) <= 2:
            raise fail("invalid option array length")
        if option[0] not in TMPFS_EXTRA:
            raise fail("invalid option: " + option[0])
        words.append("=".join(option))
    return _point("tmpfs", destination, rw=rw, options=",".join(words), spec="mount")


_TMPFS_WORDS = {"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime",
                "diratime", "nodiratime", "strictatime", "nostrictatime", "sync", "async", "dirsync"}
_TMPFS_KEYS = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "huge", "mpol"}


def parse_tmpfs(target: str, options: str) -> dict:
    """HostConfig.Tmpfs (`--tmpfs /run:size=64m,mode=755`)."""
    destination = check_target(target)
    for word in filter(None, (options or "").split(",")):
        key, eq, value = word.partition("=")
        if (not eq and word not in _TMPFS_WORDS) or (eq and (key not in _TMPFS_KEYS or not value)):
            raise InvalidParameter(f"invalid tmpfs option {word!r} for {target}")
    return _point("tmpfs", destination, rw="ro" not in (options or "").split(","), options=options or "",
                  spec="tmpfs")


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """`CONTAINER[:ro|rw]` (moby's ParseVolumesFrom)."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if not mode:
        return ref, "rw"
    words = _mode_words(mode)
    if not valid_mode(mode) or any(w in PROPAGATIONS or w in _COPY for w in words):
        raise InvalidParameter(f"invalid mode: {mode}")
    return ref, mode


def duplicate(destination: str) -> InvalidParameter:
    return InvalidParameter(f"Duplicate mount point: {destination}")


def plan_points(config: dict, host_config: dict, image_volumes: dict, volumes_from) -> list[dict]:
    """Every mount point of a new container, in moby's order: image VOLUMEs and Config.Volumes
    (anonymous), then --volumes-from (overrides), then Binds, then Mounts (a duplicate of these two
    is an error), then Tmpfs (a duplicate of a bind too). `volumes_from(ref)` gives the other
    container's points (NotFound → moby's InvalidParameter)."""
    points: dict[str, dict] = {}
    for target in list(image_volumes or {}) + list(config.get("Volumes") or {}):
        if not isinstance(target, str):
            continue
        destination = check_target(target)
        points[destination] = _point("volume", destination, copy=True, anonymous=True, spec="volume")
    for spec in host_config.get("VolumesFrom") or []:
        ref, mode = parse_volumes_from(spec)
        rw_ok = "ro" not in _mode_words(mode)
        for other in volumes_from(ref):
            if other["Type"] == "tmpfs":
                continue
            copy = dict(other, RW=other["RW"] and rw_ok, CopyData=False, Spec="volumes-from")
            points[copy["Destination"]] = copy
    explicit: set[str] = set()
    tmpfs = host_config.get("Tmpfs") or {}
    for raw in host_config.get("Binds") or []:
        point = parse_bind(raw)
        if point["Destination"] in explicit or point["Destination"] in {posixpath.normpath(t) for t in tmpfs}:
            raise duplicate(point["Destination"])
        explicit.add(point["Destination"])
        points[point["Destination"]] = point
    for m in host_config.get("Mounts") or []:
        point = parse_mount(m)
        if point["Destination"] in explicit:
            raise duplicate(m.get("Target"))
        explicit.add(point["Destination"])
        points[point["Destination"]] = point
    for target, options in tmpfs.items():
        point = parse_tmpfs(target, options)
        if point["Destination"] in explicit:
            raise duplicate(point["Destination"])
        explicit.add(point["Destination"])
        points[point["Destination"]] = point
    return sorted(points.values(), key=lambda p: (p["Destination"].count("/"), p["Destination"]))


def oci_mounts(points: list[dict]) -> list[dict]:
    """Mount points (with Source filled in) → config.json mounts, parents before children."""
    out = []
    for p in points:
        if p["Type"] == "tmpfs":
            words = [w for w in p["Options"].split(",") if w]
            base = ["nosuid", "nodev", "noexec"]
            if "exec" in words:
                base.remove("noexec")
            words = [w for w in words if w not in ("exec", "noexec")] + ([] if "exec" in words else [])
            out.append({"destination": p["Destination"], "type": "tmpfs", "source": "tmpfs",
                        "options": base + words})
            continue
        options = ["rbind", p["Propagation"] or DEFAULT_PROPAGATION]
        if not p["RW"]:
            options.append("ro")
        out.append({"destination": p["Destination"], "type": "bind", "source": p["Source"], "options": options})
    return out


def inspect_view(p: dict) -> dict:
    """A mount point as container inspect and ps show it (moby's types.MountPoint)."""
    out = {"Type": p["Type"]}
    if p["Type"] == "volume":
        out["Name"] = p["Name"]
    out.update({"Source": p["Source"], "Destination": p["Destination"]})
    if p["Type"] == "volume":
        out["Driver"] = p["Driver"]
    out.update({"Mode": p["Mode"], "RW": p["RW"], "Propagation": p["Propagation"]})
    return out
