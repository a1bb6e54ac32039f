"""Test-only fault points: the daemon kills itself (or hangs) at a named step of an operation, so the
reliability tests can prove that every interrupted start or rm is recovered at the next boot.

    BERTH_FAULT=start:after-runc-create          SIGKILL this process when that point is reached
    BERTH_FAULT=start:before-release=hang        block there until the start is cancelled (rm -f)
    BERTH_FAULT=create:before-append=sleep:1     pause there (widens a race for a test to hit)
    BERTH_FAULT=a,b=hang                         several points

The variable is read once, at import. Unset (always, outside tests), `point` is a function that
returns at once, so the code paths pay one call and nothing else.
"""
from __future__ import annotations

import os
import signal
import threading
import time

START_POINTS = ("start:after-mount", "start:after-bundle", "start:after-conmon-spawn", "start:after-runc-create",
                "start:before-release", "start:after-release", "start:after-start-event")
RM_POINTS = ("rm:after-kill", "rm:after-unmount", "rm:after-runc-delete", "rm:before-destroy")
EXIT_POINTS = ("exit:after-die",)
CREATE_POINTS = ("create:before-append",)
POINTS = START_POINTS + RM_POINTS + EXIT_POINTS + CREATE_POINTS
HANG_LIMIT_SECONDS = 600        # a hang that nobody cancels still ends


def _parse(text: str) -> dict[str, str]:
    faults = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, action = item.partition("=")
        if name not in POINTS:
            raise ValueError(f"BERTH_FAULT: unknown fault point {name!r}")
        faults[name] = action or "kill"
    return faults


_FAULTS = _parse(os.environ.get("BERTH_FAULT", ""))


def _noop(name: str, cancelled: threading.Event | None = None) -> None:
    return None


def _hit(name: str, cancelled: threading.Event | None = None) -> None:
    action = _FAULTS.get(name)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "hang":
        (cancelled or threading.Event()).wait(HANG_LIMIT_SECONDS)
    elif action is not None and action.startswith("sleep:"):     # None: a point not listed
        time.sleep(float(action[6:]))


point = _hit if _FAULTS else _noop
