"""POST /volumes/create: moby's volume.CreateOptions (every field of it: Name, Driver, DriverOpts and
Labels are applied; ClusterVolumeSpec, a swarm cluster volume, is decoded only to be refused by name)."""
from __future__ import annotations

from app.api.schemas.gotypes import GoSchema, Map, String, Struct


class ClusterVolumeSpec(GoSchema):
    """Only whether one was sent matters (app/api/volumes.py refuses it); its content is dropped."""
    go_name = "ClusterVolumeSpec"
    go_type = "volume.ClusterVolumeSpec"


class VolumeCreateRequest(GoSchema):
    go_name = "CreateOptions"
    go_type = "volume.CreateOptions"
    Name = String()
    Driver = String()
    DriverOpts = Map(String(), "map[string]string")
    Labels = Map(String(), "map[string]string")
    ClusterVolumeSpec = Struct(ClusterVolumeSpec)
