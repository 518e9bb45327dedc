"""Scheduled ingestion: a named, detached Ray actor that ingests a source on a cron schedule.

No outside scheduler is needed: the actor lives in the cluster, parses the cron expression with
croniter, and records every run (time, status, rows, fingerprint, error) in
``<state_dir>/runs.jsonl``, so a restarted actor keeps its history. A failed run is recorded and the
next one runs as planned. On a snapshot whose fingerprint it has not seen before it calls the
optional, picklable ``on_new_snapshot(snapshot)``: later stages (retraining) plug in there, so this
package imports none of them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

import ray
from croniter import croniter

from mlauto.data.snapshot import Snapshot, ingest
from mlauto.data.sources import Source
from mlauto.errors import ConfigError

logger = logging.getLogger(__name__)

RUNS_FILE = "runs.jsonl"
MAX_HISTORY = 1000  # runs kept in memory; the file is compacted to this many when it doubles
STOP_WAIT_S = 60.0


def check_schedule(expr: str) -> None:
    if not isinstance(expr, str) or not croniter.is_valid(expr):
        raise ConfigError("ingest.schedule", expr, "a cron expression: 5 fields (min hour day month weekday), "
                          "or 6 with seconds last, e.g. '*/5 * * * *' or '* * * * * */10'")


def next_run(expr: str, after: float, timezone: str = "UTC") -> float:
    """The first time strictly after ``after`` (epoch seconds) that ``expr`` fires, read in ``timezone``."""
    return float(croniter(expr, datetime.fromtimestamp(after, ZoneInfo(timezone))).get_next(float))


class RunLog:
    """Append-only JSON lines of run records; survives actor restarts."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, RUNS_FILE)
        os.makedirs(state_dir, exist_ok=True)
        self._lines = 0
        if os.path.exists(self.path):
            with open(self.path) as fh:
                self._lines = sum(1 for _ in fh)

    def load(self, limit: int = MAX_HISTORY) -> list[dict[str, Any]]:
        if not os.path.exists(self.path):
            return []
        runs: deque[dict[str, Any]] = deque(maxlen=limit)
        with open(self.path) as fh:
            for line in fh:
                try:
                    runs.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a crash
                    continue
        return list(runs)

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        self._lines += 1
        if self._lines > 2 * MAX_HISTORY:
            kept = self.load(MAX_HISTORY)
            tmp = f"{self.path}.tmp-{os.getpid()}"
            with open(tmp, "w") as fh:
                fh.writelines(json.dumps(r, default=str) + "\n" for r in kept)
            os.replace(tmp, self.path)
            self._lines = len(kept)


def summarize(runs: list[dict[str, Any]], recent: int = 20) -> dict[str, Any]:
    """Counts and the last runs of a history (what ``status`` reports)."""
    return {
        "runs": len(runs),
        "ok": sum(r.get("status") == "ok" for r in runs),
        "failed": sum(r.get("status") == "failed" for r in runs),
        "new_snapshots": sum(bool(r.get("new")) for r in runs),
        "last_run": runs[-1] if runs else None,
        "history": runs[-recent:],
    }


class IngestScheduler:
    """Runs :func:`~mlauto.data.snapshot.ingest` of ``source`` whenever ``schedule`` fires.

    Meant to run as a detached Ray actor (see :func:`start_schedule`); the schedule runs in a
    background thread so ``status`` and ``stop`` answer while an ingestion is under way. Runs missed
    while a long one was going are skipped, not queued.
    """

    def __init__(
        self,
        source: Source,
        snapshot_dir: str,
        schedule: str,
        *,
        state_dir: str,
        timezone: str = "UTC",
        keep_snapshots: int | None = None,
        on_new_snapshot: Callable[[Snapshot], Any] | None = None,
    ) -> None:
        check_schedule(schedule)
        ZoneInfo(timezone)
        self.source = source
        self.snapshot_dir = snapshot_dir
        self.schedule = schedule
        self.timezone = timezone
        self.keep_snapshots = keep_snapshots
        self.on_new_snapshot = on_new_snapshot
        self.log = RunLog(state_dir)
        self.runs: deque[dict[str, Any]] = deque(self.log.load(), maxlen=MAX_HISTORY)
        self.restored = bool(self.runs)
        self._seen = {r["fingerprint"] for r in self.runs if r.get("fingerprint")}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running_since: float | None = None
        self._next_at: float | None = None
        self._started = time.time()
        self._thread = threading.Thread(target=self._loop, name="mlauto-ingest-schedule", daemon=True)
        self._thread.start()
        logger.info("ingest schedule %r (%s) for %s; %d earlier runs restored", schedule, timezone,
                    source.describe(), len(self.runs))

    def _loop(self) -> None:
        at = next_run(self.schedule, time.time(), self.timezone)
        while not self._stop.is_set():
            self._next_at = at
            if self._stop.wait(max(0.0, at - time.time())):
                break
            self.run_once(scheduled=at)
            after = max(time.time(), at)
            at = next_run(self.schedule, after, self.timezone)
        self._next_at = None

    def run_once(self, scheduled: float | None = None) -> dict[str, Any]:
        """One ingestion, recorded whatever happens; an error never escapes (the schedule goes on)."""
        start = time.time()
        self._running_since = start
        record: dict[str, Any] = {"time": start, "scheduled": scheduled, "status": "ok", "rows": None,
                                  "fingerprint": None, "new": None, "snapshot": None, "error": None,
                                  "callback": None}
        snap = None
        try:
            snap = ingest(self.source, self.snapshot_dir, keep=self.keep_snapshots)
            new = snap.new and snap.fingerprint not in self._seen
            record.update(rows=snap.n_rows, fingerprint=snap.fingerprint, new=new, snapshot=snap.path)
        except Exception as exc:  # recorded; the next run goes ahead as planned
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            logger.warning("scheduled ingestion failed: %s", record["error"])
        if snap is not None and record["new"] and self.on_new_snapshot is not None:
            try:
                record["callback"] = {"status": "ok", "result": self.on_new_snapshot(snap)}
            except Exception as exc:
                record["callback"] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]}
                logger.warning("on_new_snapshot failed for %s: %s", snap.fingerprint, record["callback"]["error"])
        record["seconds"] = round(time.time() - start, 3)
        with self._lock:
            if snap is not None:
                self._seen.add(snap.fingerprint)
            self.runs.append(record)
            self.log.append(record)
        self._running_since = None
        logger.info("scheduled ingestion %s: %s rows, fingerprint %s, new %s", record["status"], record["rows"],
                    record["fingerprint"], record["new"])
        return record

    def status(self) -> dict[str, Any]:
        with self._lock:
            runs = list(self.runs)
        return {
            "schedule": self.schedule,
            "timezone": self.timezone,
            "source": self.source.describe(),
            "snapshot_dir": self.snapshot_dir,
            "state_file": self.log.path,
            "active": self._thread.is_alive() and not self._stop.is_set(),
            "ingesting_since": self._running_since,
            "next_run": self._next_at,
            "started": self._started,
            "restored": self.restored,
            "pid": os.getpid(),
            **summarize(runs),
        }

    def history(self, limit: int = MAX_HISTORY) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.runs)[-limit:]

    def stop(self, wait_s: float = STOP_WAIT_S) -> bool:
        """Stop scheduling; a run under way finishes first (up to ``wait_s``). True when the loop ended."""
        self._stop.set()
        self._thread.join(wait_s)
        return not self._thread.is_alive()


def _wait_gone(name: str, namespace: str, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            return
        time.sleep(0.2)


def start_schedule(name: str, namespace: str, source: Source, snapshot_dir: str, schedule: str, *,
                   state_dir: str, **kwargs: Any) -> Any:
    """Replace any scheduler of that name with a new detached one; returns its handle.

    Ray restarts a crashed actor (``max_restarts=-1``) with the same arguments; it reloads its run
    history from ``state_dir``. It reserves no CPU: the ingestion's Ray Data tasks take their own.
    """
    check_schedule(schedule)
    stop_schedule(name, namespace)
    actor_cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=4)(IngestScheduler)
    handle = actor_cls.options(name=name, namespace=namespace, lifetime="detached").remote(
        source, snapshot_dir, schedule, state_dir=state_dir, **kwargs)
    ray.get(handle.status.remote())  # a bad argument fails here, not silently in the cluster
    return handle


def stop_schedule(name: str, namespace: str, wait_s: float = STOP_WAIT_S) -> bool:
    """Stop the named scheduler (a run under way finishes first); False when none was running."""
    try:
        handle = ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    try:
        ray.get(handle.stop.remote(wait_s), timeout=wait_s + 10)
    except Exception as exc:  # a dead or stuck actor is killed all the same
        logger.warning("scheduler %s did not stop cleanly (%s); killing it", name, exc)
    ray.kill(handle, no_restart=True)
    _wait_gone(name, namespace)
    return True


def schedule_status(name: str, namespace: str | None, state_dir: str) -> dict[str, Any]:
    """The running scheduler's status, or, when none runs (or Ray is not connected), its saved history."""
    if namespace is not None and ray.is_initialized():
        try:
            return {"running": True, **ray.get(ray.get_actor(name, namespace=namespace).status.remote())}
        except ValueError:
            pass
    return {"running": False, "state_file": os.path.join(state_dir, RUNS_FILE),
            **summarize(RunLog(state_dir).load() if os.path.isdir(state_dir) else [])}
