"""The daemon's one scheduler: an APScheduler BackgroundScheduler that runs restarts and health probes.

Jobs are keyed by a string id chosen by the caller (`restart:<cid>`, `health:<cid>`); scheduling an id
again replaces the old job, so a container never has two pending restarts or two probe loops.

Misfires: `misfire_grace_time=None` runs a job however late it is — under load a restart or a probe is
delayed, never dropped (the issue's rule: no misfire is skipped). `coalesce=True` folds the runs an
interval job missed into one: a health probe that fell three intervals behind runs once, not three
times back to back, which is what Docker's probe loop does (it sleeps an interval after each probe).
`max_instances=1`: a slow probe is not overlapped by the next one.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("berth")
WORKERS = 8         # restarts and probes are short; each blocks on runc/exec, not on CPU


def _utc(epoch_seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc)


class Scheduler:
    """In-memory jobs only: what must survive a daemon restart is an event (e.g. `restart-scheduled`
    with its due time), and the boot phase re-arms jobs from the log."""

    def __init__(self, workers: int = WORKERS):
        self._sched = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=dt.timezone.utc)
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        with self._lock:
            if not self._running:
                self._sched.start()
                self._running = True

    def close(self) -> None:
        """Drop pending jobs and wait for running ones (a probe or a restart in progress) to end."""
        with self._lock:
            if self._running:
                self._running = False
                self._sched.shutdown(wait=True)

    def at(self, job_id: str, when: float, fn: Callable, *args) -> None:
        """Run fn(*args) once at epoch time `when` (now if it is past)."""
        self._sched.add_job(self._guarded(job_id, fn), "date", args=args, id=job_id,
                            replace_existing=True, run_date=_utc(when))

    def every(self, job_id: str, seconds: float, fn: Callable, *args, first: float | None = None) -> None:
        """Run fn(*args) every `seconds`, the first time at epoch `first` (default: one interval from now)."""
        kwargs = {"start_date": _utc(first - seconds)} if first is not None else {}
        self._sched.add_job(self._guarded(job_id, fn), "interval", args=args, id=job_id,
                            replace_existing=True, seconds=seconds, **kwargs)

    def cancel(self, job_id: str) -> bool:
        """Remove a pending job; False when there was none (already run, or never scheduled)."""
        try:
            self._sched.remove_job(job_id)
            return True
        except JobLookupError:
            return False

    def next_run(self, job_id: str) -> float | None:
        """The job's next due time (epoch seconds), or None."""
        job = self._sched.get_job(job_id)
        if job is None or job.next_run_time is None:
            return None
        return job.next_run_time.timestamp()

    def job_ids(self) -> list[str]:
        return [job.id for job in self._sched.get_jobs()]

    @staticmethod
    def _guarded(job_id: str, fn: Callable) -> Callable:
        """A job that raises is logged with its id; the scheduler and the other jobs go on."""
        def run(*args):
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - one bad job must not stop supervision
                log.exception("scheduled job %s", job_id)
        run.__name__ = f"job_{job_id}"
        return run
