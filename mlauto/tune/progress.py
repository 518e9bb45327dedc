"""A search progress line for consoles and CI logs alike: plain log lines, no carriage-return animation.

Tune's own status table redraws in place on a terminal and floods a CI log; this callback logs one
line (trials done / running / failed, best score so far, elapsed) at most every ``interval_s`` seconds
and a last one when the experiment ends.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from ray.tune import Callback

logger = logging.getLogger(__name__)


class SearchProgress(Callback):
    """Counts trials by state from Tune's callbacks; logs a summary line now and then.

    Only plain data is kept: Tune pickles callbacks into the experiment state (``tune.resume``).
    """

    def __init__(self, total: int, *, metric: str = "score", mode: str = "max", interval_s: float = 10.0,
                 label: str = "score") -> None:
        self.total = total
        self.metric, self.mode, self.interval_s, self.label = metric, mode, interval_s, label
        self.running: set[str] = set()
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.best = math.nan
        self.best_trial: str | None = None
        self.stopped: set[str] = set()  # running when the time budget ended the search
        self.first_result_s: float | None = None  # seconds from the search's start to its first trial result
        self.lines = 0
        self._start = time.monotonic()
        self._last = -math.inf

    # --- Tune hooks ---------------------------------------------------------------------------------
    # Counts are read from the trials' own states at every hook, so a restored experiment (tune.resume),
    # whose finished trials raise no events in this run, is counted right too.
    def setup(self, **info: Any) -> None:
        self._start = time.monotonic()  # also on a resumed run: elapsed is this run's time
        self._last = -math.inf

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._sync(trials)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self.first_result_s is None:
            self.first_result_s = round(time.monotonic() - self._start, 3)
        self._offer(trial.trial_id, result)
        self._sync(trials)
        self._maybe_log()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._sync(trials)
        self.running.discard(trial.trial_id)
        self.done.add(trial.trial_id)
        self._maybe_log()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._sync(trials)
        self.running.discard(trial.trial_id)
        self.done.discard(trial.trial_id)
        self.failed.add(trial.trial_id)
        self._maybe_log()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._sync(trials)
        self._maybe_log()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._sync(trials)
        # ended without an error and without a score: the time budget stopped them (not a failure)
        self.stopped = {t.trial_id for t in trials if getattr(t, "status", None) != "ERROR"
                        and self.metric not in (getattr(t, "last_result", None) or {})}
        self.done -= self.stopped
        self.running.clear()
        self.log()

    def first_result_text(self) -> str:
        return "-" if self.first_result_s is None else f"{self.first_result_s:.1f}s"

    def _sync(self, trials: list) -> None:
        for trial in trials:
            status, tid = getattr(trial, "status", None), trial.trial_id
            for group in (self.running, self.done, self.failed):
                group.discard(tid)
            if status == "RUNNING":
                self.running.add(tid)
            elif status == "TERMINATED":
                self.done.add(tid)
            elif status == "ERROR":
                self.failed.add(tid)
            if status in ("TERMINATED", "ERROR"):
                self._offer(tid, getattr(trial, "last_result", None) or {})

    def _offer(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not math.isnan(value) and (
            math.isnan(self.best) or (value > self.best if self.mode == "max" else value < self.best)
        ):
            self.best, self.best_trial = float(value), trial_id

    # --- output -------------------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        return {"done": len(self.done), "running": len(self.running), "failed": len(self.failed),
                "stopped": len(self.stopped), "total": self.total, "best": self.best,
                "elapsed_s": round(time.monotonic() - self._start, 1), "first_result_s": self.first_result_s}

    def line(self) -> str:
        c = self.counts()
        best = "-" if math.isnan(c["best"]) else f"{c['best']:.4f}"
        total = c["total"] if c["total"] > 0 else "?"  # no cap: the time budget ends the search
        stopped = f", {c['stopped']} stopped by the budget" if c["stopped"] else ""
        return (f"trials {c['done']}/{total} done, {c['running']} running, {c['failed']} failed{stopped}; "
                f"best {self.label} {best}; {c['elapsed_s']:.0f}s elapsed")

    def log(self) -> None:
        self._last = time.monotonic()
        self.lines += 1
        logger.info("%s", self.line())

    def _maybe_log(self) -> None:
        if time.monotonic() - self._last >= self.interval_s:
            self.log()
