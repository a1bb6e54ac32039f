"""docker top: the host's ps, narrowed to the container's processes."""
from __future__ import annotations

import subprocess

from app.errors import Conflict, InvalidParameter


class ProcessesMixin:
    """Containers.top (mixed into the service)."""

    def top(self, ref: str, ps_args: str = "-ef") -> dict:
        """`docker top`: the host's `ps` output, narrowed to the container's processes (host pids)."""
        row = self.resolve(ref)
        if not row.is_live:
            raise Conflict(f"container {row.id} is not running")
        pids = {str(p) for p in self.runc.pids(row.id)}
        args = ps_args.split() or ["-ef"]
        result = subprocess.run(["ps", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise InvalidParameter(f"Error running ps: {result.stderr.strip()}")
        lines = result.stdout.splitlines()
        titles = lines[0].split()
        if "PID" not in titles:
            raise InvalidParameter("Couldn't find PID field in ps output")
        col = titles.index("PID")
        processes = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > col and fields[col] in pids:
                processes.append(fields)
        self._note(row, "top")
        return {"Titles": titles, "Processes": processes}
