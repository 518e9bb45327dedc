"""The monitor's history, made visible: every window test, label statistic and retrain decision as
an entry ``{"step", "time", "model_version", "kind", "values"}`` (step = rows seen), exported as Ray
metrics (so Ray's Prometheus endpoint aggregates them with the replicas') and logged to MLflow as
metrics of the champion's run, batched by a background thread off the request path.

Kinds and their values: ``window`` (min_p_val, threshold, is_drift, prediction_drift), ``labels``
(accuracy or rmse, cusum, cusum_threshold, labels), and ``retrain_started``, ``promotion``,
``rejection``, ``retrain_failed``, ``reference_updated`` (version, challenger_score, champion_score,
reason, where known). The store keeps the entries (:mod:`mlauto.monitor.store`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

KINDS = ("window", "labels", "retrain_started", "promotion", "rejection", "retrain_failed", "reference_updated")
DECISIONS = KINDS[2:]
MLFLOW_FLUSH_S = 5.0
MLFLOW_BATCH = 1000  # MLflow's log_batch limit on metrics


def entry(step: int, model_version: str, kind: str, values: dict[str, Any]) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"history kind {kind!r} is not one of {KINDS}")
    return {"step": int(step), "time": time.time(), "model_version": str(model_version), "kind": kind,
            "values": values}


def mlflow_metrics(item: dict[str, Any]) -> dict[str, float]:
    """The numbers of one entry as MLflow metric names (``monitor.*``)."""
    v, kind = item["values"], item["kind"]
    if kind == "window":
        out = {"monitor.min_p_val": v.get("min_p_val"), "monitor.drift": float(bool(v.get("is_drift"))),
               "monitor.prediction_drift": float(bool(v.get("prediction_drift")))}
    elif kind == "labels":
        out = {"monitor.accuracy": v.get("accuracy"), "monitor.rmse": v.get("rmse"), "monitor.cusum": v.get("cusum"),
               "monitor.labels": v.get("labels")}
    else:
        out = {f"monitor.{kind}": 1.0, "monitor.challenger_score": v.get("challenger_score"),
               "monitor.champion_score": v.get("champion_score")}
    return {k: float(x) for k, x in out.items() if isinstance(x, (int, float)) and x == x}


class RayMetrics:
    """Gauges and counters in ``ray.util.metrics`` (exported as ``ray_mlauto_monitor_*``), tagged with
    the monitor's name and the model version. Built lazily: outside a Ray worker nothing is exported."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self._m: dict[str, Any] | None = None

    def _metrics(self) -> dict[str, Any] | None:
        if self._m is None:
            try:
                from ray.util.metrics import Counter, Gauge

                tags = ("monitor", "model_version")
                self._m = {
                    "p_val": Gauge("mlauto_monitor_drift_p_value", "smallest corrected p-value of the last window",
                                   tag_keys=tags),
                    "drift": Counter("mlauto_monitor_drift_windows", "windows that drifted", tag_keys=tags),
                    "windows": Counter("mlauto_monitor_windows", "windows tested", tag_keys=tags),
                    "accuracy": Gauge("mlauto_monitor_accuracy", "rolling accuracy on labelled rows", tag_keys=tags),
                    "rmse": Gauge("mlauto_monitor_rmse", "rolling RMSE on labelled rows", tag_keys=tags),
                    "cusum": Gauge("mlauto_monitor_error_cusum", "CUSUM of the labelled error rate", tag_keys=tags),
                    "rows": Counter("mlauto_monitor_rows_received", "served rows the monitor stored",
                                    tag_keys=("monitor", "version")),
                    "retrains": Counter("mlauto_monitor_retrains", "retrain decisions by outcome",
                                        tag_keys=("monitor", "outcome")),
                }
            except Exception as exc:  # noqa: BLE001  (no Ray worker here: history still persists)
                logger.debug("no Ray metrics: %s", exc)
                self._m = {}
        return self._m or None

    def rows(self, n: int, version: str) -> None:
        if n and (m := self._metrics()):
            m["rows"].inc(n, tags={"monitor": self.monitor, "version": str(version)})

    def record(self, item: dict[str, Any]) -> None:
        m = self._metrics()
        if not m:
            return
        tags = {"monitor": self.monitor, "model_version": item["model_version"]}
        v, kind = item["values"], item["kind"]
        if kind == "window":
            if isinstance(v.get("min_p_val"), (int, float)):
                m["p_val"].set(float(v["min_p_val"]), tags=tags)
            m["windows"].inc(1, tags=tags)
            if v.get("is_drift"):
                m["drift"].inc(1, tags=tags)
        elif kind == "labels":
            for key, name in (("accuracy", "accuracy"), ("rmse", "rmse"), ("cusum", "cusum")):
                if isinstance(v.get(key), (int, float)):
                    m[name].set(float(v[key]), tags=tags)
        elif kind in ("retrain_started", "promotion", "rejection", "retrain_failed"):
            m["retrains"].inc(1, tags={"monitor": self.monitor, "outcome": kind})


class MlflowExporter:
    """Logs entries as metrics on a run (the champion's) from a daemon thread, ``log_batch`` every
    few seconds. Entries queued when the actor dies are not logged: the store keeps the history."""

    def __init__(self, tracking_uri: str | None, flush_s: float = MLFLOW_FLUSH_S) -> None:
        self.tracking_uri, self.flush_s = tracking_uri, flush_s
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(maxsize=100_000)
        self._stop = threading.Event()
        self.logged = self.failed = 0
        self._thread: threading.Thread | None = None

    def add(self, run_id: str | None, item: dict[str, Any]) -> None:
        if not self.tracking_uri or not run_id:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="monitor-mlflow", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((run_id, item))
        except queue.Full:
            self.failed += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def flush(self) -> int:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        by_run: dict[str, list[Any]] = {}
        while True:
            try:
                run_id, item = self._queue.get_nowait()
            except queue.Empty:
                break
            stamp = int(item["time"] * 1000)
            by_run.setdefault(run_id, []).extend(Metric(k, v, stamp, item["step"])
                                                 for k, v in mlflow_metrics(item).items())
        if not by_run:
            return 0
        client = MlflowClient(self.tracking_uri)
        sent = 0
        for run_id, metrics in by_run.items():
            for i in range(0, len(metrics), MLFLOW_BATCH):
                try:
                    client.log_batch(run_id, metrics=metrics[i : i + MLFLOW_BATCH])
                    sent += len(metrics[i : i + MLFLOW_BATCH])
                except Exception as exc:  # noqa: BLE001  (tracking down: the store still has it)
                    self.failed += len(metrics[i : i + MLFLOW_BATCH])
                    logger.warning("monitor history not logged to MLflow run %s: %s", run_id, exc)
        self.logged += sent
        return sent

    def close(self) -> None:
        self._stop.set()
