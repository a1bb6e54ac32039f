"""Restart policies: one pure function deciding whether an exited container is started again, and when.

Docker's semantics (moby daemon/internal/restartmanager, daemon/monitor.go):
- the delay starts at 100 ms and doubles after each restart, to at most 1 minute; a run that lasted
  10 s or more resets it to 100 ms, whatever the policy and exit code;
- `always` restarts after every exit, `unless-stopped` unless the user stopped the container,
  `on-failure[:N]` after a non-zero exit only, and (N > 0) only while fewer than N restarts were made;
- a stop or kill by the user (with SIGKILL or the container's stop signal) never triggers a restart:
  moby cancels the restart manager (Container.ExitOnNext) before the signal is sent.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.errors import InvalidParameter

FIRST_DELAY = 0.1          # seconds
MAX_DELAY = 60.0
RESET_AFTER = 10.0         # a run at least this long starts the backoff over
POLICIES = ("no", "always", "unless-stopped", "on-failure")


@dataclass(frozen=True)
class Decision:
    restart: bool
    delay: float            # seconds from the exit to the next start (the backoff in force either way)


def decide(policy: str, max_retries: int, exit_code: int, stopped_by_user: bool, restart_count: int,
           ran_for: float, last_delay: float) -> Decision:
    """Restart or not, and after how long. `last_delay` is the delay before the previous restart (0 if
    there was none since the user last started the container); `ran_for` the run's length in seconds."""
    delay = 0.0 if ran_for >= RESET_AFTER else max(0.0, last_delay)
    delay = FIRST_DELAY if delay == 0 else min(delay * 2, MAX_DELAY)
    if stopped_by_user or policy in ("", "no"):
        return Decision(False, delay)
    if policy == "always":
        return Decision(True, delay)
    if policy == "unless-stopped":
        return Decision(True, delay)
    if policy == "on-failure":
        within = max_retries <= 0 or restart_count < max_retries
        return Decision(within and exit_code != 0, delay)
    return Decision(False, delay)


def validate(policy: dict | None) -> None:
    """moby's container.ValidateRestartPolicy, with its wording."""
    name = (policy or {}).get("Name") or ""
    count = (policy or {}).get("MaximumRetryCount") or 0
    if not isinstance(count, int) or isinstance(count, bool):
        raise InvalidParameter("invalid restart policy: maximum retry count must be an integer")
    if name in ("always", "unless-stopped", "no"):
        if count != 0:
            msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            raise InvalidParameter(msg + (" and cannot be negative" if count < 0 else ""))
    elif name == "on-failure":
        if count < 0:
            raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    elif name != "":
        raise InvalidParameter(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                               "'on-failure', or 'unless-stopped'")


def policy_of(host_config: dict) -> tuple[str, int]:
    policy = host_config.get("RestartPolicy") or {}
    return (policy.get("Name") or "no"), int(policy.get("MaximumRetryCount") or 0)


def check_auto_remove(host_config: dict) -> None:
    """moby's verifyContainerSettings: `--rm` and a restart policy do not go together."""
    if host_config.get("AutoRemove") and policy_of(host_config)[0] != "no":
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
