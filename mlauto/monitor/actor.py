"""The monitor: a named, detached Ray actor that watches live traffic and schedules retraining.

It tests tumbling windows of served rows for feature drift and prediction drift, joins delayed
labels to served rows for rolling accuracy, and starts a retrain (in a detached runner actor, see
:mod:`mlauto.monitor.retrains`) on drift, on an accuracy drop, on a cron schedule, or when asked.
Everything it knows lives in a database (:mod:`mlauto.monitor.store`): each call commits its rows,
counters, events and history in one transaction, so a monitor restarted on any node resumes where
the last completed call left it. Its history is also exported as Ray metrics and MLflow metrics.
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
from mlauto.monitor import retrains as runners
from mlauto.monitor.retrains import Retraining
from mlauto.monitor import state as codec
from mlauto.monitor.detectors import DETECTORS, make_detector, prediction_drift
from mlauto.monitor.history import MlflowExporter, RayMetrics, entry
from mlauto.monitor.label_drift import ErrorRateDetector
from mlauto.monitor.performance import PerformanceTracker
from mlauto.monitor.store import MonitorStore, Retention
from mlauto.monitor.traffic import TrafficLog
from mlauto.redact import redact_url

logger = logging.getLogger(__name__)

MAX_EVENTS = 500  # kept in memory for status(); the store keeps monitor.keep_events
COUNTERS = ("rows_seen", "tests_run", "drift_count", "concept_drift_count", "labels_quarantined", "_retrain_started")

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


class Monitor(Retraining):
    """Tumbling windows of ``window`` rows of the watched model version, each tested against its
    training features; rows scored by another version are stored and counted, never windowed.

    ``retrain_fn(reason, labelled) -> dict`` runs in a detached runner actor on drift, when accuracy
    over the last ``perf_window`` labels falls below ``min_accuracy``, on a concept-drift alarm or on
    the cron ``retrain_schedule`` (one at a time, after a cooldown). ``labelled`` is a DataFrame of
    the served records with their true label in column ``target``, oldest first. When it reports a
    promotion, the monitor watches whatever the champion alias then points to.
    """

    def __init__(self, loader: Callable[[str | None], Any], conf: MonitorConf, retrain_fn: RetrainFn | None = None,
                 *, target: str, version: str | None = None, state_dir: str | None = None,
                 state_url: str | None = None) -> None:
        """``conf``: the ``monitor`` section (``conf.retrain`` false ignores ``retrain_fn``); ``target``: the
        label column; ``version`` pins a model (default: the champion). The database: ``state_url``,
        else ``conf.state_url``, else a SQLite file in ``state_dir``, else memory (nothing survives)."""
        _yield_cpu()
        self.loader = loader
        self.name = conf.actor_name
        self.detector_name = conf.detector
        self.p_val, self.window, self.cooldown_s = conf.p_val, conf.window, conf.cooldown_s
        self.retrain_fn = retrain_fn if conf.retrain else None
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
        self.accept_new_classes = conf.accept_new_classes
        self.rows_seen = self.tests_run = self.drift_count = self.concept_drift_count = self.labels_quarantined = 0
        self.rows_other_version: dict[str, int] = {}
        self.last_test: dict[str, Any] | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.retrains: list[dict[str, Any]] = []
        self.performance = PerformanceTracker(conf.perf_window, conf.min_accuracy, conf.max_rmse)
        self._buffer: list[tuple[np.ndarray, np.ndarray]] = []
        self._buffered = 0
        self._retrain: dict[str, Any] | None = None  # the running retrain: id, runner, reason, ref
        self._retrain_started = -float("inf")
        self._wanted: str | None = None  # a retrain asked for during a call, started after its commit
        self._pending_events: list[dict[str, Any]] = []
        self._pending_history: list[dict[str, Any]] = []
        url = state_url or (conf.state_url if conf.persist else None) or (
            f"sqlite:///{os.path.join(os.path.abspath(state_dir), 'monitor.sqlite')}" if state_dir else None)
        self.state_url = url
        self.keep = Retention(events=conf.keep_events, history=conf.keep_history, retrains=conf.keep_retrains,
                              unlabelled_rows=conf.keep_unlabelled_rows)
        self.store = MonitorStore(url, self.name, self.keep)
        self.traffic = TrafficLog(self.store)
        self.namespace = ray.get_runtime_context().namespace if ray.is_initialized() else None
        self.metrics = RayMetrics(self.name)
        self.mlflow = MlflowExporter(getattr(loader, "uri", None))
        self.restored = False
        self._load(version)
        self._restore()
        self._reconcile()
        self._commit()
        self._stop = threading.Event()
        if self.retrain_schedule:
            threading.Thread(target=self._schedule_loop, name="retrain-schedule", daemon=True).start()

    # -- state -------------------------------------------------------------------------------
    def _event(self, kind: str, **evidence: Any) -> None:
        event = {"time": time.time(), "event": kind, **evidence}
        self.events.append(event)
        self._pending_events.append(event)
        logger.info("monitor event %s %s", kind, evidence)

    def _history(self, kind: str, **values: Any) -> None:
        self._pending_history.append(entry(self.rows_seen, self.model_version, kind, values))

    def _state(self) -> dict[str, Any]:
        counters = {key.lstrip("_"): getattr(self, key) for key in COUNTERS}
        counters["retrain_started"] = counters["retrain_started"] if np.isfinite(counters["retrain_started"]) else None
        return {"model_version": self.model_version,
                "counters": {**counters, **self.traffic.counts(), "rows_other_version": self.rows_other_version},
                "buffer": codec.encode_buffer(self._buffer), "last_test": self.last_test,
                "performance": codec.encode_performance(self.performance),
                "label_detector": codec.encode_detector(self.label_detector)}

    def _commit(self, work: Callable[[Any], Any] | None = None) -> Any:
        """One transaction: ``work(conn)`` (rows, labels), then the state, events and history of this call.
        On a database error the in-memory counters are read back from the last commit."""
        try:
            with self.store.transaction() as conn:
                out = work(conn) if work is not None else None
                if self.store.due_prune():
                    self.traffic.rows_joinable -= self.store.prune(conn)["unlabelled_rows"]
                self.store.put_state(conn, self._state())
                self.store.add_events(conn, self._pending_events)
                self.store.add_history(conn, self._pending_history)
        except Exception:
            self.store.forget_written()
            self._resync()
            raise
        done, self._pending_events, self._pending_history = self._pending_history, [], []
        for item in done:
            self.metrics.record(item)
            self.mlflow.add(self.run_id, item)
        if self._wanted is not None:
            reason, self._wanted = self._wanted, None
            self._maybe_retrain(reason)
        return out

    def _resync(self) -> None:
        saved = self.store.load_state()
        if saved.get("model_version") == self.model_version:
            self._restore_counters(saved)
            self._buffer = self._decoded("buffer", codec.decode_buffer, saved.get("buffer"), [])
            self._buffered = sum(len(b[0]) for b in self._buffer)

    def _decoded(self, key: str, decode: Callable[..., Any], value: Any, default: Any, *args: Any) -> Any:
        """``decode(value)``, or ``default`` after counting a value that does not decode (a torn record)."""
        try:
            return decode(value, *args)
        except Exception:  # noqa: BLE001
            self.store.count_corrupt("state", key)
            return default

    def _restore_counters(self, saved: dict[str, Any]) -> None:
        counters = saved.get("counters")
        if not isinstance(counters, dict):  # never saved, or corrupt: count the rows once (start only)
            counters = self.store.recount()
        for key in COUNTERS:
            value = counters.get(key.lstrip("_"))
            if isinstance(value, (int, float)):
                setattr(self, key, value)
        self.rows_other_version = dict(counters.get("rows_other_version") or {})
        self.traffic.rows_joinable = int(counters.get("rows_joinable", 0))
        self.traffic.labelled_rows = int(counters.get("labelled_rows", 0))

    def _restore(self) -> None:
        """Resume from the store. Counters, traffic, labels, events, history and retrains always; the
        unwindowed rows, the rolling accuracy and the label CUSUM only if they judge the same model."""
        saved = self.store.load_state()
        self.events.extend(self.store.events(MAX_EVENTS))
        self.retrains = [r for r in self.store.retrains(self.keep.retrains) if r["handled"]]
        if not saved:
            return
        self._restore_counters(saved)
        same = saved.get("model_version") == self.model_version
        if same:
            self._buffer = self._decoded("buffer", codec.decode_buffer, saved.get("buffer"), [])
            self._buffered = sum(len(b[0]) for b in self._buffer)
            self.last_test = saved.get("last_test") if isinstance(saved.get("last_test"), dict) else None
            self.label_detector = self._decoded("label_detector", codec.decode_detector, saved.get("label_detector"),
                                                self.label_detector, self.label_detector)
        if isinstance(saved.get("performance"), dict):
            self._decoded("performance", codec.restore_performance, saved["performance"], None, self.performance, same)
        self.restored = True
        dropped = [] if same else ["unwindowed rows", "rolling accuracy", "label CUSUM"]
        self._event("state_restored", rows_seen=self.rows_seen, model_version=self.model_version,
                    saved_for=saved.get("model_version"), dropped=dropped,
                    kept=["counters", "served rows", "labels", "events", "history", "retrains"])

    def _load(self, version: str | None) -> None:
        bundle = self.loader(version)
        self.model_version = str(bundle.version)
        self.run_id = getattr(bundle, "run_id", None)
        categorical = bundle.meta.get("categorical_features", [])
        self.n_features = int(np.asarray(bundle.reference).shape[1])
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
               confidence: np.ndarray | None = None, records: list[dict[str, Any]] | None = None,
               version: str | None = None) -> int:
        """Add served rows (preprocessed ``features``, and the raw ``records`` a retrain can learn from
        once labelled) scored by model ``version`` (None: the watched one). Rows of the watched version
        go into the windows (the tests run for every full window); rows of another version, or of
        another feature width, are stored and counted per version. Returns rows received so far."""
        self._poll_retrain()
        predictions = np.asarray(predictions, dtype=object)
        scored_by = self.model_version if version is None else str(version)
        try:
            features = np.asarray(features, dtype=float)
        except (TypeError, ValueError):
            features = np.empty((0, 0))
        n = len(row_ids)
        watched = scored_by == self.model_version and features.shape == (n, self.n_features) and len(predictions) == n
        self.rows_seen += n
        if watched:
            self._buffer.append((features, predictions))
            self._buffered += n
            if self._buffered >= self.window:
                self._windows()
        elif n:
            key = scored_by if scored_by != self.model_version else (
                f"{scored_by} (shape {features.shape}, expected {self.n_features} features)")
            if key not in self.rows_other_version:
                self._event("rows_other_version", version=key, watched=self.model_version)
            self.rows_other_version[key] = self.rows_other_version.get(key, 0) + n
        self.performance.add_confidence(confidence if watched else None)
        self._commit(lambda conn: self.traffic.add_served(conn, row_ids, predictions, confidence, records, scored_by))
        self.metrics.rows(n, scored_by)
        return self.rows_seen

    def _windows(self) -> None:
        rows = np.vstack([b[0] for b in self._buffer])
        preds = np.concatenate([b[1] for b in self._buffer])
        while len(rows) >= self.window:
            self._test(rows[: self.window], preds[: self.window])
            rows, preds = rows[self.window :], preds[self.window :]
        self._buffer = [(rows, preds)] if len(rows) else []
        self._buffered = len(rows)

    def feedback(self, row_ids: list[str], labels: list[Any], unseen: list[int] | None = None) -> dict[str, Any]:
        """Join true labels to served rows. Raises UnknownRows or DuplicateFeedback, changing nothing.

        ``unseen``: indices of labels of a class the model never saw (checked by the replica). Unless
        ``accept_new_classes``, they are quarantined (an event with the labels and the reason, counted)
        and join neither training, the accuracy nor the judging window.
        """
        self._poll_retrain()
        held: list[tuple[str, Any]] = []
        if unseen and not self.accept_new_classes:
            skip = set(unseen)
            held = [(row_ids[i], labels[i]) for i in sorted(skip)]
            row_ids = [r for i, r in enumerate(row_ids) if i not in skip]
            labels = [v for i, v in enumerate(labels) if i not in skip]

        def work(conn: Any) -> None:
            if row_ids:
                self._join(conn, row_ids, labels)  # raises before the quarantine counts anything
            if held:
                self.labels_quarantined += len(held)
                self._event("label_quarantined", reason="a class the model has never seen (a possible new class; "
                            "monitor.accept_new_classes=true lets such labels train)", row_ids=[r for r, _ in held],
                            labels=[v for _, v in held], count=len(held), model_version=self.model_version)

        self._commit(work)
        return self.status_performance()

    def _join(self, conn: Any, row_ids: list[str], labels: list[Any]) -> None:
        perf = self.performance
        if self.task == "regression":
            perf.add_errors(self.traffic.add_labels(conn, row_ids, labels, numeric=True))
            correct = []
        else:
            correct = self.traffic.add_labels(conn, row_ids, labels)
            perf.add_outcomes(correct)
        cusum = None
        if self.label_detector is not None and correct:
            alarm = self.label_detector.update(np.array([not c for c in correct], dtype=float))
            cusum = alarm
            if alarm["is_drift"]:
                self.concept_drift_count += 1
                self._event("concept_drift", error_rate_cusum=alarm["statistic"], threshold=alarm["threshold"],
                            reference_error=alarm["reference_error"], labels=perf.labels_total,
                            model_version=self.model_version)
                self._want_retrain(f"error rate above validation's {alarm['reference_error']:.3f} (CUSUM)")
        values = {"rmse": perf.rmse} if self.task == "regression" else {"accuracy": perf.accuracy}
        self._history("labels", **values, labels=perf.labels_total,
                      cusum=None if cusum is None else cusum["statistic"],
                      cusum_threshold=None if cusum is None else cusum["threshold"])
        if perf.degraded():
            if self.task == "regression":
                self._event("performance_drop", rmse=perf.rmse, max_rmse=perf.max_rmse, labels=len(perf.errors),
                            model_version=self.model_version)
                self._want_retrain(f"rmse {perf.rmse:.3f} > {perf.max_rmse}")
            else:
                self._event("performance_drop", accuracy=perf.accuracy, min_accuracy=perf.min_accuracy,
                            labels=len(perf.correct), model_version=self.model_version)
                self._want_retrain(f"accuracy {perf.accuracy:.3f} < {perf.min_accuracy}")

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
        worst = int(np.argmin(result["p_vals"]))
        self._history("window", min_p_val=float(result["p_vals"][worst]), threshold=result["threshold"],
                      is_drift=bool(result["is_drift"]), prediction_drift=bool(result["prediction_drift"]["is_drift"]))
        if result["is_drift"]:
            self.drift_count += 1
            name = self.feature_names[worst] if worst < len(self.feature_names) else str(worst)
            self._event("drift", min_p_val=result["p_vals"][worst], feature=name,
                        threshold=result["threshold"], model_version=self.model_version,
                        prediction_drift=result["prediction_drift"]["is_drift"])
            self._want_retrain(f"drift on {name}")

    def _switch(self, version: str | None) -> None:
        """Watch another model version: new reference, fresh windows, accuracy and label CUSUM."""
        before = self.model_version
        self._load(version)
        self._buffer, self._buffered = [], 0
        self.performance.reset()
        self._event("reference_updated", model_version=self.model_version, previous=before)
        self._history("reference_updated", version=self.model_version, previous=before)

    def reload(self, version: str | None = None) -> str:
        """Watch another model version (a manual promotion or rollback): new reference, fresh accuracy."""
        self._switch(version)
        self._commit()
        return self.model_version

    def status(self) -> dict[str, Any]:
        self._poll_retrain()
        return {
            "model_version": self.model_version,
            "detector": self.detector_name,
            "window": self.window,
            "rows_seen": self.rows_seen,
            "rows_other_version": dict(self.rows_other_version),
            "tests_run": self.tests_run,
            "drift_count": self.drift_count,
            "last_test": self.last_test,
            "performance": self.status_performance(),
            "retrain_schedule": self.retrain_schedule,
            "retrain_running": self._retrain is not None,
            "retrain": None if self._retrain is None else {k: self._retrain[k] for k in ("id", "reason", "started")},
            "retrains": self.retrains[-20:],
            "events": list(self.events)[-50:],
            "restored": self.restored,
            "corrupt_records": self.store.corrupt_records,
            "state_url": redact_url(self.state_url) if self.state_url else None,
            "history_to_mlflow": {"logged": self.mlflow.logged, "failed": self.mlflow.failed},
            "pid": os.getpid(),
        }

    def events_log(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest ``limit`` persisted events, oldest first (read from the tail)."""
        return self.store.events(limit)

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` history entries (all kept ones when None), oldest first: ``{"step": rows seen,
        "time", "model_version", "kind", "values"}`` (kinds and values: :mod:`mlauto.monitor.history`)."""
        return self.store.history(limit)

    def flush_history(self) -> int:
        """Log the queued history to MLflow now (tests, and a clean stop); returns metrics logged."""
        return self.mlflow.flush()


def start_monitor(loader: Any, conf: MonitorConf, namespace: str, retrain_fn: RetrainFn | None = None,
                  options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Replace any monitor named ``conf.actor_name`` with a new detached one; returns its handle.

    ``options``: Ray actor options (placement). ``kwargs`` are :class:`Monitor`'s keywords (``target``, ``version``, ``state_dir``, ``state_url``).
    Restarts (``max_restarts=-1``) rerun ``__init__`` with the same arguments, which resumes from the
    store (and adopts a retrain still running).
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
    handle = actor_cls.options(name=name, namespace=namespace, lifetime="detached", **(options or {})).remote(
        loader, conf, retrain_fn, **kwargs)
    ray.get(handle.status.remote())  # fail here, not on the first request, if the detector cannot be built
    return handle


def stop_monitor(name: str, namespace: str) -> bool:
    """Stop the monitor for good, and any retrain runner it started."""
    try:
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
        stopped = True
    except ValueError:
        stopped = False
    runners.kill_runners(name, namespace)
    return stopped
