"""The monitor: a named, detached Ray actor that watches live traffic and schedules retraining.

It tests tumbling windows of served rows for feature drift and prediction drift, joins delayed
labels to served rows for rolling accuracy, persists its events and state so a restarted actor
resumes where it was, and starts a retraining Ray task on drift, on an accuracy drop, on a cron
schedule, or when asked (a new data snapshot, an admin). The retrain gets the labelled production
rows, so the challenger learns from the traffic that degraded the champion.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any, Callable

import numpy as np
import ray

from mlauto.config.schema import MonitorConf
from mlauto.monitor.detectors import DETECTORS, make_detector, prediction_drift
from mlauto.monitor.label_drift import ErrorRateDetector
from mlauto.monitor.performance import PerformanceTracker
from mlauto.monitor.state import StateStore
from mlauto.monitor.traffic import TrafficLog

logger = logging.getLogger(__name__)

MAX_EVENTS = 500
# The unwindowed rows are saved at least this often and after every window test; served rows and
# labels go to the traffic log (SQLite) as they come, and retrain outcomes are saved at once.
SAVE_EVERY_S = 1.0
# What a restart restores; everything else is rebuilt from the model bundle.
PERSISTED = ("rows_seen", "tests_run", "drift_count", "last_test", "retrains", "_buffer", "_buffered",
             "performance", "_retrain_started", "label_detector", "concept_drift_count", "labels_quarantined")


RetrainFn = Callable[[str, Any], dict[str, Any]]
NICE = 10  # the monitor actor's CPU priority below the replicas': their request path comes first


def _yield_cpu() -> None:
    """Inside the monitor actor's own process, lower its CPU priority, so that where it shares cores
    with replicas its window tests and writes wait for the request path, not the other way round."""
    try:
        if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
            os.nice(NICE - os.nice(0))
    except (OSError, AttributeError):
        pass


def _run_retrain(retrain_fn: RetrainFn, reason: str, labelled: Any) -> dict[str, Any]:
    return retrain_fn(reason, labelled)


class Monitor:
    """Tumbling windows of ``window`` rows, each tested against the champion's training features.

    ``retrain_fn(reason, labelled) -> dict`` runs as a Ray task on drift, when accuracy over the last
    ``perf_window`` labels falls below ``min_accuracy``, or on the cron ``retrain_schedule`` (one at a
    time, after a cooldown). ``labelled`` is a DataFrame of the served records with their true label
    in column ``target``, oldest first. When it reports a promotion, the reference data moves to the
    new champion.
    """

    def __init__(self, loader: Callable[[str | None], Any], conf: MonitorConf, retrain_fn: RetrainFn | None = None,
                 *, target: str, version: str | None = None, state_dir: str | None = None,
                 max_served: int = 100_000) -> None:
        """``conf``: the ``monitor`` section (``conf.retrain`` false ignores ``retrain_fn``); ``target``: the
        label column; ``version`` pins a model (default: the champion); ``state_dir`` persists state."""
        _yield_cpu()
        self.loader = loader
        self.detector_name = conf.detector
        self.p_val = conf.p_val
        self.window = conf.window
        self.retrain_fn = retrain_fn if conf.retrain else None
        self.cooldown_s = conf.cooldown_s
        self.target = target
        self.retrain_schedule = conf.retrain_schedule
        self.correction = conf.correction
        self.detector_options = dict(conf.options)
        cache_option = DETECTORS.get(conf.detector).CACHE_OPTION  # what the detector builds once and keeps
        if state_dir and cache_option:
            self.detector_options.setdefault(cache_option, os.path.join(state_dir, "cache"))
        self.label_drift, self.label_shift, self.label_ert = conf.label_drift, conf.label_shift, conf.label_ert
        self.label_warmup, self.label_reference_rows = conf.label_warmup, conf.label_reference_rows
        self.label_detector: ErrorRateDetector | None = None
        self.concept_drift_count = 0
        self.accept_new_classes = conf.accept_new_classes
        self.labels_quarantined = 0
        self.rows_seen = 0
        self.tests_run = 0
        self.drift_count = 0
        self.last_test: dict[str, Any] | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.retrains: list[dict[str, Any]] = []
        self.performance = PerformanceTracker(conf.perf_window, conf.min_accuracy, conf.max_rmse)
        self._buffer: list[tuple[np.ndarray, np.ndarray]] = []
        self._buffered = 0
        self._retrain_ref: Any = None
        self._retrain_started = -float("inf")
        self._retrain_reason: str | None = None
        self._saved_at = 0.0
        self.store = StateStore(state_dir) if state_dir else None
        self.traffic = TrafficLog(os.path.join(state_dir, "traffic.sqlite") if state_dir else None, max_served)
        self.restored = False
        self._load(version)
        self._restore()
        self._stop = threading.Event()
        if self.retrain_schedule:
            threading.Thread(target=self._schedule_loop, name="retrain-schedule", daemon=True).start()

    # -- state -------------------------------------------------------------------------------
    def _event(self, kind: str, **evidence: Any) -> None:
        event = {"time": time.time(), "event": kind, **evidence}
        self.events.append(event)
        if self.store is not None:
            self.store.append_event(event)
        logger.info("monitor event %s %s", kind, evidence)

    def _restore(self) -> None:
        state = self.store.load() if self.store is not None else None
        if not state:
            return
        if state.get("model_version") != self.model_version:
            self._event("state_discarded", saved_for=state.get("model_version"), model_version=self.model_version)
            return
        for key in PERSISTED:
            if key in state:
                setattr(self, key, state[key])
        self.events.extend(self.store.events(MAX_EVENTS))
        self.restored = True
        if state.get("retrain_running"):  # the task's result went with the old actor
            self.retrains.append({"status": "lost", "error": "monitor restarted while a retrain ran",
                                  "time": time.time()})
        self._event("state_restored", rows_seen=self.rows_seen, saved=state.get("saved"))

    def _save(self, force: bool = False) -> None:
        if self.store is None or (not force and time.time() - self._saved_at < SAVE_EVERY_S):
            return
        self.store.save({"model_version": self.model_version, "retrain_running": self._retrain_ref is not None,
                         **{key: getattr(self, key) for key in PERSISTED}})
        self._saved_at = time.time()

    def _load(self, version: str | None) -> None:
        bundle = self.loader(version)
        self.model_version = bundle.version
        categorical = bundle.meta.get("categorical_features", [])
        self.detector = make_detector(self.detector_name, bundle.reference, self.p_val, categorical,
                                      self.correction, **self.detector_options)
        self.task = bundle.task
        # Concept drift from labels is a CUSUM on the classification error rate: classifiers only.
        self.label_detector = (self._label_detector(bundle.meta.get("val_metrics", {}).get("accuracy"),
                                                    bundle.meta.get("val_rows"))
                               if self.task != "regression" else None)
        self.feature_names = bundle.meta.get("feature_names", [])
        model = bundle.pipeline.named_steps["model"]
        if self.task == "regression":
            self.classes = None
            self.reference_predictions = np.asarray(model.predict(bundle.reference), dtype=float)
        else:
            self.classes = list(bundle.pipeline.classes_)
            proba = model.predict_proba(bundle.reference)
            self.reference_predictions = np.asarray(self.classes, dtype=object)[np.argmax(proba, axis=1)]

    def _label_detector(self, val_accuracy: float | None, val_rows: int | None = None) -> ErrorRateDetector | None:
        """A CUSUM on the errors of labelled rows against the validation error rate: concept drift
        (labels change, features do not), which feature-drift tests cannot see. Its threshold allows
        for the validation rate being an estimate from ``val_rows`` rows (the bundle's, else
        ``label_reference_rows``, else 1,000), and the first ``label_warmup`` labels (ones that
        joined served rows) are pooled into that estimate."""
        if not self.label_drift or val_accuracy is None:
            return None
        reference_error = min(max(1.0 - float(val_accuracy), 0.01), 0.5)  # a perfect validation still alarms
        rows = int(self.label_reference_rows or val_rows or 1000)
        return ErrorRateDetector(reference_error, shift=min(self.label_shift, 0.99 - reference_error),
                                 ert=self.label_ert, reference_rows=rows, warmup=int(self.label_warmup))

    # -- traffic -----------------------------------------------------------------------------
    def ingest(self, features: np.ndarray, predictions: np.ndarray, row_ids: list[str],
               confidence: np.ndarray | None = None, records: list[dict[str, Any]] | None = None) -> int:
        """Add served rows (preprocessed ``features``, and the raw ``records`` a retrain can learn from
        once labelled); run the tests for every full window. Returns rows seen so far."""
        self._poll_retrain()
        features = np.asarray(features)
        predictions = np.asarray(predictions, dtype=object)
        self.rows_seen += len(features)
        self.traffic.add_served(row_ids, predictions, confidence, records, self.model_version)
        self.performance.add_confidence(confidence)
        self._buffer.append((features, predictions))
        self._buffered += len(features)
        if self._buffered >= self.window:
            rows = np.vstack([b[0] for b in self._buffer])
            preds = np.concatenate([b[1] for b in self._buffer])
            while len(rows) >= self.window:
                self._test(rows[: self.window], preds[: self.window])
                rows, preds = rows[self.window :], preds[self.window :]
            self._buffer = [(rows, preds)] if len(rows) else []
            self._buffered = len(rows)
            self._save(force=True)
        else:
            self._save()
        return self.rows_seen

    def feedback(self, row_ids: list[str], labels: list[Any], unseen: list[int] | None = None) -> dict[str, Any]:
        """Join true labels to served rows. Raises UnknownRows or DuplicateFeedback, changing nothing.

        ``unseen``: indices of labels of a class the model never saw (checked by the replica). Unless
        ``accept_new_classes``, they are quarantined (an event with the labels and the reason, counted)
        and join neither training, the accuracy nor the judging window.
        """
        self._poll_retrain()
        if unseen and not self.accept_new_classes:
            skip = set(unseen)
            held = [(row_ids[i], labels[i]) for i in sorted(skip)]
            row_ids = [r for i, r in enumerate(row_ids) if i not in skip]
            labels = [v for i, v in enumerate(labels) if i not in skip]
            if row_ids:
                self._join(row_ids, labels)  # raises before the quarantine counts anything
            self.labels_quarantined += len(held)
            self._event("label_quarantined", reason="a class the model has never seen (a possible new class; "
                        "monitor.accept_new_classes=true lets such labels train)", row_ids=[r for r, _ in held],
                        labels=[v for _, v in held], count=len(held), model_version=self.model_version)
            self._save(force=True)
            return self.status_performance()
        return self._join(row_ids, labels)

    def _join(self, row_ids: list[str], labels: list[Any]) -> dict[str, Any]:
        if self.task == "regression":
            self.performance.add_errors(self.traffic.add_labels(row_ids, labels, numeric=True))
            correct = []
        else:
            correct = self.traffic.add_labels(row_ids, labels)
            self.performance.add_outcomes(correct)
        if self.label_detector is not None and correct:
            alarm = self.label_detector.update(np.array([not c for c in correct], dtype=float))
            if alarm["is_drift"]:
                self.concept_drift_count += 1
                self._event("concept_drift", error_rate_cusum=alarm["statistic"], threshold=alarm["threshold"],
                            reference_error=alarm["reference_error"], labels=self.performance.labels_total,
                            model_version=self.model_version)
                self._maybe_retrain(f"error rate above validation's {alarm['reference_error']:.3f} (CUSUM)")
        status = self.status_performance()
        if self.performance.degraded():
            perf = self.performance
            if self.task == "regression":
                self._event("performance_drop", rmse=perf.rmse, max_rmse=perf.max_rmse, labels=len(perf.errors),
                            model_version=self.model_version)
                self._maybe_retrain(f"rmse {perf.rmse:.3f} > {perf.max_rmse}")
            else:
                self._event("performance_drop", accuracy=perf.accuracy, min_accuracy=perf.min_accuracy,
                            labels=len(perf.correct), model_version=self.model_version)
                self._maybe_retrain(f"accuracy {perf.accuracy:.3f} < {perf.min_accuracy}")
        self._save(force=True)
        return status

    def status_performance(self) -> dict[str, Any]:
        label = self.label_detector.status() if self.label_detector is not None else None
        return {**self.performance.status(), **self.traffic.counts(), "concept_drift_count": self.concept_drift_count,
                "labels_quarantined": self.labels_quarantined, "error_rate_cusum": label}

    def _test(self, window: np.ndarray, predictions: np.ndarray) -> None:
        result = self.detector.test(window)
        result["model_version"] = self.model_version
        result["rows_seen"] = self.rows_seen
        result["prediction_drift"] = prediction_drift(self.reference_predictions, predictions, self.classes,
                                                      self.p_val)
        self.tests_run += 1
        self.last_test = result
        if result["is_drift"]:
            self.drift_count += 1
            worst = int(np.argmin(result["p_vals"]))
            name = self.feature_names[worst] if worst < len(self.feature_names) else str(worst)
            self._event("drift", min_p_val=result["p_vals"][worst], feature=name,
                        threshold=result["threshold"], model_version=self.model_version,
                        prediction_drift=result["prediction_drift"]["is_drift"])
            self._maybe_retrain(f"drift on {name}")

    # -- retraining --------------------------------------------------------------------------
    def _maybe_retrain(self, reason: str) -> None:
        if self.retrain_fn is None:
            return
        if self._retrain_ref is not None:
            return  # one retrain at a time
        if time.time() - self._retrain_started < self.cooldown_s:
            return
        self._retrain_started = time.time()
        labelled = self.traffic.labelled(self.target)
        task = ray.remote(num_cpus=0, max_retries=0)(_run_retrain)
        self._retrain_ref = task.remote(self.retrain_fn, reason, labelled)
        self._retrain_reason = reason
        self._event("retrain_started", reason=reason, labelled_rows=len(labelled))

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
            self.retrains.append({"status": "failed", "reason": self._retrain_reason, "error": str(exc)[:2000],
                                  "time": time.time()})
            self._event("retrain_failed", reason=self._retrain_reason, error=str(exc)[:2000])
            self._follow_champion(False)
            self._save(force=True)
            return
        self.retrains.append({"status": "finished", **result, "time": time.time()})
        self._event("retrain_finished", **result)
        self._event("promotion" if result.get("promoted") else "rejection", version=result.get("version"),
                    challenger_score=result.get("challenger_score"), champion_score=result.get("champion_score"))
        self._follow_champion(bool(result.get("promoted")))
        self._save(force=True)

    def _follow_champion(self, promoted: bool) -> None:
        """After a retrain (finished or failed): watch whatever the champion alias points to now, not
        what the retrain produced (an operator may have moved it since, or it moved before a failure)."""
        resolve = getattr(self.loader, "resolve", None)
        try:
            moved = resolve(None) != self.model_version if resolve is not None else promoted
        except Exception as exc:  # the registry is unreachable: keep watching what we have
            logger.warning("could not read the champion alias after a retrain: %s", exc)
            moved = promoted
        if moved:
            self.reload(None)

    def reload(self, version: str | None = None) -> str:
        """Watch another model version (a manual promotion or rollback): new reference, fresh accuracy."""
        self._load(version)
        self._buffer, self._buffered = [], 0
        self.performance.reset()
        self._event("reference_updated", model_version=self.model_version)
        self._save(force=True)
        return self.model_version

    def _schedule_loop(self) -> None:
        """Wake at each cron time and ask the actor (through its own queue, so calls never overlap)."""
        from croniter import croniter

        handle = ray.get_runtime_context().current_actor
        times = croniter(self.retrain_schedule, time.time())
        while True:
            due = times.get_next(float)
            if self._stop.wait(max(0.0, due - time.time())):
                return
            handle.scheduled_retrain.remote()

    def scheduled_retrain(self) -> bool:
        """The ``retrain_schedule`` fired: retrain unless one runs or the cooldown holds."""
        self._poll_retrain()
        before = self._retrain_ref
        self._maybe_retrain(f"schedule {self.retrain_schedule}")
        started = self._retrain_ref is not None and self._retrain_ref is not before
        if not started:
            self._event("schedule_skipped", schedule=self.retrain_schedule,
                        why="a retrain is running" if before is not None else "cooldown or retraining off")
        return started

    def trigger_retrain(self, reason: str = "manual") -> bool:
        """Start a retrain now (cooldown ignored); False when retraining is off or one is running."""
        self._poll_retrain()
        if self.retrain_fn is None or self._retrain_ref is not None:
            return False
        self._retrain_started = -float("inf")
        self._maybe_retrain(reason)
        return True

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
            "performance": self.status_performance(),
            "retrain_schedule": self.retrain_schedule,
            "retrain_running": self._retrain_ref is not None,
            "retrains": self.retrains[-20:],
            "events": list(self.events)[-50:],
            "restored": self.restored,
            "pid": os.getpid(),
        }

    def events_log(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Every persisted event (or the in-memory ones when nothing is persisted)."""
        return self.store.events(limit) if self.store is not None else list(self.events)[-limit:]


def start_monitor(loader: Any, conf: MonitorConf, namespace: str, retrain_fn: RetrainFn | None = None,
                  **kwargs: Any) -> Any:
    """Replace any monitor named ``conf.actor_name`` with a new detached one; returns its handle.

    ``kwargs`` are :class:`Monitor`'s keywords (``target``, ``version``, ``state_dir``). Restarts
    (``max_restarts=-1``) rerun ``__init__`` with the same arguments, which restores the persisted state
    when ``state_dir`` is given.
    """
    name = conf.actor_name
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
    handle = actor_cls.options(name=name, namespace=namespace, lifetime="detached").remote(
        loader, conf, retrain_fn, **kwargs)
    ray.get(handle.status.remote())  # fail here, not on the first request, if the detector cannot be built
    return handle


def stop_monitor(name: str, namespace: str) -> bool:
    try:
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
        return True
    except ValueError:
        return False
