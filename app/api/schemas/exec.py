"""POST /containers/{id}/exec and POST /exec/{id}/start: moby's container.ExecOptions and
container.ExecStartOptions (api/types/container/exec.go), field by field."""
from __future__ import annotations

from app.api.schemas.gotypes import Bool, GoSchema, Int, List, String


class ExecOptions(GoSchema):
    go_name = "ExecOptions"
    go_type = "container.ExecOptions"
    User = String()
    Privileged = Bool()
    Tty = Bool()
    ConsoleSize = List(Int("uint"), "[2]uint", length=2, zero=0)
    AttachStdin = Bool()
    AttachStderr = Bool()
    AttachStdout = Bool()
    Detach = Bool()
    DetachKeys = String()
    Env = List(String())
    WorkingDir = String()
    Cmd = List(String())


class ExecStartOptions(GoSchema):
    go_name = "ExecStartOptions"
    go_type = "container.ExecStartOptions"
    Detach = Bool()
    Tty = Bool()
    ConsoleSize = List(Int("uint"), "[2]uint", length=2, zero=0)
