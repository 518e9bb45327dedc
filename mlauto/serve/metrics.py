"""Prometheus metrics of one replica (one process): requests, latency, errors, predictions, monitor drops."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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
        self.monitor_sent = Gauge("mlauto_monitor_rows_sent", "Rows handed to the monitor", registry=self.registry)
        self.monitor_dropped = Gauge("mlauto_monitor_rows_dropped",
                                     "Rows the monitor buffer dropped (full buffer or monitor unreachable)",
                                     registry=self.registry)

    def render(self, sender: Any = None) -> bytes:
        if sender is not None:
            self.monitor_sent.set(sender.sent)
            self.monitor_dropped.set(sender.dropped)
        return generate_latest(self.registry)


@lru_cache(maxsize=1)
def replica_metrics() -> ReplicaMetrics:
    """One set per process; built on first use, never at import."""
    return ReplicaMetrics()
