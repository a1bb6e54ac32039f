"""runc, the execution driver, with berth's own `--root` state directory (so berth never sees or
disturbs other engines' containers)."""
from __future__ import annotations

import json
import os
import shutil
import signal as signals
import subprocess
import tempfile

from app.errors import BerthError, InvalidParameter


class RuncError(BerthError):
    """runc or conmon failed (HTTP 500 with runc's message; start maps exec errors to 400, kill a
    "not running" to 409)."""
    status = 500


def parse_signal(value: str | int) -> int:
    """`TERM`, `SIGTERM`, `sigkill`, `9` → a signal number; Docker's message otherwise."""
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signals.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        number = getattr(signals.Signals, name, None) if name in signals.Signals.__members__ else None
        if number is not None:
            return int(number)
    raise InvalidParameter(f"Invalid signal: {value}")


class Runc:
    def __init__(self, binary: str, root: str):
        self.binary = binary
        self.root = root
        os.makedirs(root, mode=0o700, exist_ok=True)

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuncError(f"runc {args[0]} did not finish within {timeout:g}s") from None
        except OSError as err:          # runc missing or not executable, no memory to fork
            raise RuncError(f"runc {args[0]}: {err.strerror or err}") from err
        if check and result.returncode != 0:
            raise RuncError(_message(result.stderr) or f"runc {args[0]} failed with {result.returncode}")
        return result

    def state(self, container_id: str) -> dict | None:
        """runc's state (status created/running/paused/stopped, pid), or None if runc does not know it."""
        result = self._run("state", container_id, check=False)
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def list(self) -> list[dict]:
        result = self._run("list", "--format", "json", check=False)
        return json.loads(result.stdout or "null") or []

    def kill(self, container_id: str, signal: int, all_processes: bool = False) -> None:
        args = ["kill"] + (["--all"] if all_processes else []) + [container_id, str(signal)]
        self._run(*args)

    def pause(self, container_id: str) -> None:
        self._run("pause", container_id)

    def resume(self, container_id: str) -> None:
        self._run("resume", container_id)

    def update(self, container_id: str, resources: dict) -> None:
        """`runc update --resources FILE`: apply an OCI `linux.resources` object to the live cgroup.
        runc's (or the kernel's) refusal raises RuncError with runc's message; nothing is changed then
        but what runc had already written (it writes memory and swap in the order the kernel accepts)."""
        with tempfile.NamedTemporaryFile("w", prefix="resources-", suffix=".json", dir=self.root) as fh:
            json.dump(resources, fh)
            fh.flush()
            self._run("update", "--resources", fh.name, container_id)

    def pids(self, container_id: str) -> list[int]:
        return json.loads(self._run("ps", "--format", "json", container_id).stdout or "[]")

    def known(self, container_id: str) -> bool:
        return os.path.isdir(os.path.join(self.root, container_id))

    def forget_stopped(self, container_id: str) -> None:
        """What `runc delete` does for a container whose processes have all exited (remove its cgroups,
        then its state dir), without the ~8 ms of starting runc. Falls back to `runc delete --force`
        when a cgroup is still busy (a process not yet reaped) or the state cannot be read."""
        state_dir = os.path.join(self.root, container_id)
        try:
            with open(os.path.join(state_dir, "state.json")) as fh:
                paths = set((json.load(fh).get("cgroup_paths") or {}).values())
        except FileNotFoundError:
            return                       # runc does not know it: nothing to delete
        except (OSError, ValueError):
            self.delete(container_id, force=True)
            return
        for path in sorted(paths, key=len, reverse=True):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                self.delete(container_id, force=True)
                return
        shutil.rmtree(state_dir, ignore_errors=True)

    def delete(self, container_id: str, force: bool = False) -> None:
        result = self._run("delete", *(["--force"] if force else []), container_id, check=False)
        if result.returncode != 0 and "does not exist" not in result.stderr and "not exist" not in result.stderr:
            raise RuncError(_message(result.stderr))


def _message(stderr: str) -> str:
    """runc logs JSON-ish lines (`time=… level=error msg="…"`); keep the message."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    if 'msg="' in last:
        return last.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return last
