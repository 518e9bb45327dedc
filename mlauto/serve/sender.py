"""Ships served rows to the monitor actor in batches, never blocking the request path."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import ray

logger = logging.getLogger(__name__)


class MonitorSender:
    """Buffers served rows and ships them to the monitor actor without waiting on it.

    When the buffer is full, rows are dropped and counted, never silently.
    """

    def __init__(self, name: str, namespace: str, flush_s: float, max_buffer: int) -> None:
        self.name, self.namespace = name, namespace
        self.flush_s, self.max_buffer = flush_s, max_buffer
        self.sent = 0
        self.dropped = 0
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[dict[str, Any]]]] = []
        self._n_pending = 0
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one flush at a time, so the last ref covers every row sent
        self._last_ref: ray.ObjectRef | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="monitor-sender", daemon=True)
        self._thread.start()

    def add(self, features: np.ndarray, predictions: np.ndarray, confidence: np.ndarray, row_ids: list[str],
            records: list[dict[str, Any]]) -> None:
        """``records``: the validated request rows, kept so that labelled traffic can be trained on."""
        with self._lock:
            if self._n_pending + len(features) > self.max_buffer:
                self.dropped += len(features)
                return
            self._pending.append((features, predictions, confidence, row_ids, records))
            self._n_pending += len(features)

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def flush(self) -> ray.ObjectRef | None:
        """Send what is buffered; returns the ref of the last ``ingest`` call so a caller can wait on it."""
        with self._send_lock:
            return self._flush_locked()

    def _flush_locked(self) -> ray.ObjectRef | None:
        with self._lock:
            batch, self._pending, self._n_pending = self._pending, [], 0
        if not batch:
            return self._last_ref
        features = np.vstack([b[0] for b in batch])
        predictions = np.concatenate([b[1] for b in batch])
        confidence = np.concatenate([b[2] for b in batch])
        row_ids = [r for b in batch for r in b[3]]
        records = [r for b in batch for r in b[4]]
        try:
            # Looked up on every flush (one GCS call per flush_s): a cached handle to a replaced
            # monitor would swallow rows without an error.
            actor = ray.get_actor(self.name, namespace=self.namespace)
            self._last_ref = actor.ingest.remote(features, predictions, row_ids, confidence, records)
            sent, dropped = len(features), 0
        except Exception as exc:  # monitor absent or restarting: count the loss
            sent, dropped = 0, len(features)
            logger.warning("monitor %s unreachable, dropped %d row(s): %s", self.name, len(features), exc)
        with self._lock:
            self.sent += sent
            self.dropped += dropped
        return self._last_ref

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        self.flush()
