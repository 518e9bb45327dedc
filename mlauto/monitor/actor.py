"""The monitor: a named, detached Ray actor that tests live traffic for drift and schedules retraining."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable

import numpy as np
import ray

from mlauto.monitor.detectors import make_detector

logger = logging.getLogger(__name__)

MAX_EVENTS = 500


def _run_retrain(retrain_fn: Callable[[str], dict[str, Any]], reason: str) -> dict[str, Any]:
    return retrain_fn(reason)


class Monitor:
    """Tumbling windows of ``window`` rows, each tested against the champion's training features.

    ``retrain_fn(reason) -> dict`` runs as a Ray task when drift is found (one at a time, after a
    cooldown); when it reports a promotion, the reference data moves to the new champion.
    """

    def __init__(
        self,
        loader: Callable[[str | None], Any],
        *,
        detector: str = "ks",
        p_val: float = 0.05,
        window: int = 50,
        version: str | None = None,
        retrain_fn: Callable[[str], dict[str, Any]] | None = None,
        cooldown_s: float = 60.0,
    ) -> None:
        self.loader = loader
        self.detector_name = detector
        self.p_val = p_val
        self.window = window
        self.retrain_fn = retrain_fn
        self.cooldown_s = cooldown_s
        self.rows_seen = 0
        self.tests_run = 0
        self.drift_count = 0
        self.last_test: dict[str, Any] | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.retrains: list[dict[str, Any]] = []
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._retrain_ref: Any = None
        self._retrain_started = -float("inf")
        self._load(version)

    def _event(self, kind: str, **evidence: Any) -> None:
        self.events.append({"time": time.time(), "event": kind, **evidence})
        logger.info("monitor event %s %s", kind, evidence)

    def _load(self, version: str | None) -> None:
        bundle = self.loader(version)
        self.model_version = bundle.version
        categorical = bundle.meta.get("categorical_features", [])
        self.detector = make_detector(self.detector_name, bundle.reference, self.p_val, categorical)
        self.feature_names = bundle.meta.get("feature_names", [])

    def ingest(self, features: np.ndarray, predictions: np.ndarray, row_ids: list[str]) -> int:
        """Add served rows; run a test for every full window. Returns rows seen so far."""
        self._poll_retrain()
        features = np.asarray(features)
        self.rows_seen += len(features)
        self._buffer.append(features)
        self._buffered += len(features)
        if self._buffered >= self.window:
            rows = np.vstack(self._buffer)
            while len(rows) >= self.window:
                self._test(rows[: self.window])
                rows = rows[self.window :]
            self._buffer = [rows] if len(rows) else []
            self._buffered = len(rows)
        return self.rows_seen

    def _test(self, window: np.ndarray) -> None:
        result = self.detector.test(window)
        result["model_version"] = self.model_version
        result["rows_seen"] = self.rows_seen
        self.tests_run += 1
        self.last_test = result
        if result["is_drift"]:
            self.drift_count += 1
            worst = int(np.argmin(result["p_vals"]))
            name = self.feature_names[worst] if worst < len(self.feature_names) else str(worst)
            self._event("drift", min_p_val=result["p_vals"][worst], feature=name,
                        threshold=result["threshold"], model_version=self.model_version)
            self._maybe_retrain(f"drift on {name}")

    def _maybe_retrain(self, reason: str) -> None:
        if self.retrain_fn is None:
            return
        if self._retrain_ref is not None:
            return  # one retrain at a time
        if time.time() - self._retrain_started < self.cooldown_s:
            return
        self._retrain_started = time.time()
        task = ray.remote(num_cpus=0, max_retries=0)(_run_retrain)
        self._retrain_ref = task.remote(self.retrain_fn, reason)
        self._event("retrain_started", reason=reason)

    def _poll_retrain(self) -> None:
        if self._retrain_ref is None:
            return
        ready, _ = ray.wait([self._retrain_ref], timeout=0)
        if not ready:
            return
        ref, self._retrain_ref = self._retrain_ref, None
        try:
            result = ray.get(ref)
        except Exception as exc:  # the live model keeps serving; only the event log changes
            self.retrains.append({"status": "failed", "error": str(exc)[:2000], "time": time.time()})
            self._event("retrain_failed", error=str(exc)[:2000])
            return
        self.retrains.append({"status": "finished", **result, "time": time.time()})
        self._event("retrain_finished", **result)
        if result.get("promoted"):
            self._load(result["version"])
            self._buffer, self._buffered = [], 0
            self._event("reference_updated", model_version=self.model_version)

    def status(self) -> dict[str, Any]:
        self._poll_retrain()
        return {
            "model_version": self.model_version,
            "detector": self.detector_name,
            "window": self.window,
            "rows_seen": self.rows_seen,
            "tests_run": self.tests_run,
            "drift_count": self.drift_count,
            "last_test": self.last_test,
            "retrain_running": self._retrain_ref is not None,
            "retrains": self.retrains[-20:],
            "events": list(self.events)[-50:],
        }


def start_monitor(name: str, namespace: str, loader: Any, **kwargs: Any) -> Any:
    """Replace any monitor of that name with a new detached one; returns its handle."""
    try:
        old = ray.get_actor(name, namespace=namespace)
        ray.kill(old, no_restart=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                ray.get_actor(name, namespace=namespace)
                time.sleep(0.2)
            except ValueError:
                break
    except ValueError:
        pass
    actor_cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(Monitor)
    handle = actor_cls.options(name=name, namespace=namespace, lifetime="detached").remote(loader, **kwargs)
    ray.get(handle.status.remote())  # fail here, not on the first request, if the detector cannot be built
    return handle


def stop_monitor(name: str, namespace: str) -> bool:
    try:
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
        return True
    except ValueError:
        return False
