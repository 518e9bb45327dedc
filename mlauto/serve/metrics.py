"""Prometheus metrics of one replica (one process): requests, latency, errors, predictions, and what
became of every row handed to the monitor.

The monitor-delivery counters are monotonic. In the app's ``/metrics`` they are this replica's (a
restarted replica starts again at 0, as Prometheus counters may); the same counts also go to Ray's
metrics (``ray_mlauto_monitor_rows_total{state, reason}`` on Ray's Prometheus endpoint), which add up
across replicas and survive replica restarts.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _SenderCollector:
    """The monitor sender's counters, read when scraped (the sender owns the numbers)."""

    def __init__(self) -> None:
        self.sender: Any = None
        self.monitor_rows: Callable[[], int | None] | None = None

    def collect(self) -> Iterator[Any]:
        if self.sender is None:
            return
        c = self.sender.counts()
        for key, text in (("received", "Served rows handed to the monitor sender"),
                          ("sent", "Rows submitted to the monitor's ingest"),
                          ("acknowledged", "Rows the monitor's ingest confirmed")):
            yield CounterMetricFamily(f"mlauto_monitor_rows_{key}", text, value=c[key])
        dropped = CounterMetricFamily("mlauto_monitor_rows_dropped", "Rows lost to monitoring, by reason "
                                      "(buffer_full, monitor_unreachable, sender_error before a send; "
                                      "monitor_error after it)", labels=["reason"])
        from mlauto.serve.sender import BUFFER_FULL, MONITOR_ERROR, SENDER_ERROR, UNREACHABLE

        for reason in (BUFFER_FULL, UNREACHABLE, SENDER_ERROR, MONITOR_ERROR):
            dropped.add_metric([reason], c["dropped"].get(reason, 0))
        yield dropped
        yield GaugeMetricFamily("mlauto_monitor_rows_in_flight", "Rows sent and not yet confirmed",
                                value=c["in_flight"])
        yield GaugeMetricFamily("mlauto_monitor_rows_pending", "Rows buffered, not yet sent", value=c["pending"])
        yield CounterMetricFamily("mlauto_monitor_sender_errors", "Errors of the sender loop (logged)",
                                  value=c["errors"])
        seen = self.monitor_rows() if self.monitor_rows is not None else None
        if seen is not None:
            yield GaugeMetricFamily("mlauto_monitor_rows_seen", "Rows the monitor actor has received in all "
                                    "(from every replica; persisted across monitor restarts)", value=seen)


class ReplicaMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mlauto_requests", "HTTP requests by route and status code",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("mlauto_request_latency_seconds", "Request latency inside the replica",
                                 ["route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.errors = Counter("mlauto_prediction_errors", "Predictions that raised", registry=self.registry)
        self.predictions = Counter("mlauto_predictions", "Predicted rows by class", ["label"],
                                   registry=self.registry)
        self.labels_unseen = Counter("mlauto_labels_unseen_class", "Feedback labels of a class the model never "
                                     "saw (quarantined by the monitor unless monitor.accept_new_classes)",
                                     registry=self.registry)
        self._sender = _SenderCollector()
        self.registry.register(self._sender)

    def attach(self, sender: Any, monitor_rows: Callable[[], int | None] | None = None) -> None:
        """Export ``sender``'s counters (and the monitor's own count, read by ``monitor_rows``)."""
        self._sender.sender, self._sender.monitor_rows = sender, monitor_rows

    def render(self) -> bytes:
        return generate_latest(self.registry)


@lru_cache(maxsize=1)
def replica_metrics() -> ReplicaMetrics:
    """One set per process; built on first use, never at import."""
    return ReplicaMetrics()


def ray_row_counter(app: str) -> Callable[[str, str, int], None] | None:
    """A hook for :class:`~mlauto.serve.sender.MonitorSender` that adds its counts to Ray's metrics
    (cluster-wide, across replica restarts); None where Ray's metrics are unavailable."""
    try:
        from ray.util.metrics import Counter as RayCounter

        counter = RayCounter("mlauto_monitor_rows", "Served rows by what became of them on the way to the monitor",
                             tag_keys=("app", "state", "reason"))
    except Exception as exc:
        logger.warning("Ray metrics unavailable, the monitor-delivery counters are per replica only: %s", exc)
        return None

    def count(state: str, reason: str, n: int) -> None:
        counter.inc(n, tags={"app": app, "state": state, "reason": reason or "none"})

    return count
