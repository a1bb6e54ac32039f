"""POST /containers/{id}/update: moby's container.UpdateConfig (container.Resources embedded, plus
RestartPolicy), with the same Go types as create's HostConfig (container_create.py)."""
from __future__ import annotations

import copy

from app.api.schemas.container_create import HostConfig, RestartPolicy
from app.api.schemas.gotypes import GoSchema, Struct
from app.runtime.containers.update import RESOURCE_KEYS


class UpdateConfig(GoSchema):
    go_name = "UpdateConfig"
    go_type = "container.UpdateConfig"
    RestartPolicy = Struct(RestartPolicy)


for _key in RESOURCE_KEYS:          # the Resources fields, declared once in container_create.HostConfig
    UpdateConfig._declared_fields[_key] = copy.deepcopy(HostConfig._declared_fields[_key])
