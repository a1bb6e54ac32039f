"""POST /volumes/create: moby's volume.CreateOptions."""
from __future__ import annotations

from app.api.schemas.gotypes import GoSchema, Map, String


class VolumeCreateRequest(GoSchema):
    go_name = "CreateOptions"
    go_type = "volume.CreateOptions"
    Name = String()
    Driver = String()
    DriverOpts = Map(String(), "map[string]string")
    Labels = Map(String(), "map[string]string")
