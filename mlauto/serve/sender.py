"""Ships served rows to the monitor actor in batches, never blocking the request path, and counts
what became of every row.

Each row carries the model version that scored it. A flush groups rows by version (a swap to a
model of another feature width never mixes widths in one array) and sends each group in chunks of
at most ``SEND_CHUNK`` rows. A row is *sent* when its ``ingest`` call is submitted, *acknowledged*
when that call returned, and *dropped* with a reason otherwise. A row a flush has taken stays
*pending* until its own send is counted, so at any time (under the counters' lock)::

    received = pending + sent + dropped_before_send     (buffer_full, monitor_unreachable, sender_error)
    sent     = acknowledged + in_flight + dropped_after_send                    (monitor_error)

The counters only grow (they are per replica process; :mod:`mlauto.serve.metrics` also exports them
through Ray's metrics so they add up across replicas and survive replica restarts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import ray

logger = logging.getLogger(__name__)

SEND_CHUNK = 5000  # rows per ingest call: a large request goes in several calls, never dropped whole
# Reasons a row is dropped; the first three happen before a send, the last after it.
BUFFER_FULL, UNREACHABLE, SENDER_ERROR, MONITOR_ERROR = ("buffer_full", "monitor_unreachable", "sender_error",
                                                         "monitor_error")
AFTER_SEND = (MONITOR_ERROR,)
FLUSH_DROPS = (UNREACHABLE, SENDER_ERROR)  # drops of rows a flush took: they leave pending as they are counted
LOOKUP_S = 5.0  # the monitor's handle is looked up again this often, and after any failed call


@dataclass
class _Rows:
    features: np.ndarray
    predictions: np.ndarray
    confidence: np.ndarray
    row_ids: list[str]
    records: list[dict[str, Any]]
    version: str | None

    def __len__(self) -> int:
        return len(self.row_ids)

    def part(self, start: int, stop: int) -> "_Rows":
        return _Rows(self.features[start:stop], self.predictions[start:stop], self.confidence[start:stop],
                     self.row_ids[start:stop], self.records[start:stop], self.version)


def _joined(parts: list[_Rows]) -> _Rows:
    """Rows of one version (hence one feature width) as one block."""
    if len(parts) == 1:
        return parts[0]
    return _Rows(np.vstack([p.features for p in parts]), np.concatenate([p.predictions for p in parts]),
                 np.concatenate([p.confidence for p in parts]), [r for p in parts for r in p.row_ids],
                 [r for p in parts for r in p.records], parts[0].version)


class MonitorSender:
    """Buffers served rows and ships them to the monitor actor without waiting on it.

    When the buffer is full, the rows that do not fit are dropped and counted, never silently.
    ``on_count(state, reason, n)``, if given, is told of every change (Ray metrics hook).
    """

    def __init__(self, name: str, namespace: str, flush_s: float, max_buffer: int,
                 on_count: Callable[[str, str, int], None] | None = None) -> None:
        self.name, self.namespace = name, namespace
        self.flush_s, self.max_buffer = flush_s, max_buffer
        self.received = self.sent = self.acknowledged = 0
        self.dropped: dict[str, int] = defaultdict(int)
        self.errors = 0  # sender-loop errors (logged); the loop goes on
        self._on_count = on_count
        self._pending: list[_Rows] = []
        self._n_pending = 0
        self._in_flight: list[tuple[Any, int]] = []  # (ingest ref, rows)
        self._with_version: bool | None = None  # whether the monitor's ingest takes ``version``
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one flush at a time, so the last ref covers every row sent
        self._last_ref: Any = None
        self._actor: Any = None
        self._looked_up = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="monitor-sender", daemon=True)
        self._thread.start()

    # -- counting ---------------------------------------------------------------------------
    def _count(self, state: str, n: int, reason: str = "") -> None:
        """Called with ``self._lock`` held."""
        if n <= 0:
            return
        if state == "sent" or (state == "dropped" and reason in FLUSH_DROPS):
            self._n_pending -= n  # a taken row leaves pending in the same step that counts its fate
        if state == "dropped":
            self.dropped[reason] += n
        else:
            setattr(self, state, getattr(self, state) + n)
        if self._on_count is not None:
            try:
                self._on_count(state, reason, n)
            except Exception:  # metrics must never cost a row
                pass

    def _taken_fates(self) -> int:
        """Rows whose fate a flush has counted (sent, or dropped before a send); ``self._lock`` held."""
        return self.sent + sum(self.dropped.get(r, 0) for r in FLUSH_DROPS)

    @property
    def pending(self) -> int:
        return self._n_pending

    @property
    def in_flight(self) -> int:
        return sum(n for _, n in self._in_flight)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def counts(self) -> dict[str, Any]:
        """A consistent snapshot of the counters (they add up: see the module docstring)."""
        with self._lock:
            return {"received": self.received, "pending": self._n_pending, "sent": self.sent,
                    "acknowledged": self.acknowledged, "in_flight": self.in_flight,
                    "dropped": dict(self.dropped), "dropped_total": self.dropped_total, "errors": self.errors}

    # -- the request path -------------------------------------------------------------------
    def add(self, features: np.ndarray, predictions: np.ndarray, confidence: np.ndarray, row_ids: list[str],
            records: list[dict[str, Any]], version: str | None = None) -> None:
        """``records``: the validated request rows, kept so that labelled traffic can be trained on;
        ``version``: the model version that scored them."""
        rows = _Rows(features, predictions, confidence, list(row_ids), list(records),
                     None if version is None else str(version))
        with self._lock:
            self._count("received", len(rows))
            room = max(self.max_buffer - self._n_pending, 0)
            if len(rows) > room:
                self._count("dropped", len(rows) - room, BUFFER_FULL)  # never buffered: not pending
                rows = rows.part(0, room)
            if len(rows):
                self._pending.append(rows)
                self._n_pending += len(rows)

    # -- the sender thread ------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self.flush()
            except Exception:  # never expected (flush counts its own losses); the loop must not die
                with self._lock:
                    self.errors += 1
                logger.exception("monitor sender: flush failed")

    def flush(self) -> Any:
        """Send what is buffered and settle finished sends; returns the ref of the last ``ingest`` call
        so a caller can wait on it."""
        with self._send_lock:
            self._settle()
            return self._flush_locked()

    def _flush_locked(self) -> Any:
        with self._lock:
            batch, self._pending = self._pending, []  # still counted pending until each send is counted
        if not batch:
            return self._last_ref
        taken = sum(map(len, batch))
        with self._lock:
            before = self._taken_fates()
        try:
            self._send_batch(batch)
        except Exception:  # never expected (each send counts its own loss); logged and counted
            with self._lock:
                self.errors += 1
            logger.exception("monitor sender: flush failed")
        with self._lock:  # rows an unexpected error left neither sent nor dropped: never stuck in pending
            settled = self._taken_fates() - before
            if settled < taken:
                self._count("dropped", taken - settled, SENDER_ERROR)
        return self._last_ref

    def _send_batch(self, batch: list[_Rows]) -> None:
        by_version: dict[str | None, list[_Rows]] = {}
        for rows in batch:
            by_version.setdefault(rows.version, []).append(rows)
        try:
            actor = self._handle()
        except Exception as exc:  # monitor absent or restarting: count the loss
            with self._lock:
                self._count("dropped", sum(len(r) for r in batch), UNREACHABLE)
            logger.warning("monitor %s unreachable, dropped %d row(s): %s", self.name, sum(map(len, batch)), exc)
            return
        for parts in by_version.values():
            try:
                rows = _joined(parts)
            except Exception:  # e.g. two widths under one version label: send each part alone
                for part in parts:
                    self._send(actor, part)
                continue
            for start in range(0, len(rows), SEND_CHUNK):
                self._send(actor, rows.part(start, start + SEND_CHUNK))

    def _handle(self) -> Any:
        """The monitor's handle, cached for ``LOOKUP_S`` (one GCS call per flush costs the replica CPU).
        A handle to a monitor that was replaced meanwhile fails its calls, which are counted as
        ``monitor_error`` and make the next flush look the name up again."""
        if self._actor is None or time.monotonic() - self._looked_up > LOOKUP_S:
            self._actor = ray.get_actor(self.name, namespace=self.namespace)
            self._looked_up = time.monotonic()
        return self._actor

    def _send(self, actor: Any, rows: _Rows) -> None:
        args = (rows.features, rows.predictions, rows.row_ids, rows.confidence, rows.records)
        try:
            ref = None
            if self._with_version is not False:
                try:
                    ref = actor.ingest.remote(*args, version=rows.version)
                    self._with_version = True
                except TypeError:  # a monitor whose ingest has no ``version`` keyword
                    self._with_version = False
            if ref is None:
                ref = actor.ingest.remote(*args)
        except Exception as exc:
            self._actor = None
            with self._lock:
                self.errors += 1
                self._count("dropped", len(rows), SENDER_ERROR)
            logger.warning("monitor %s: could not send %d row(s): %s", self.name, len(rows), exc)
            return
        with self._lock:
            self._count("sent", len(rows))
            self._in_flight.append((ref, len(rows)))
        self._last_ref = ref

    def _settle(self, timeout: float = 0.0) -> None:
        """Count the sends that finished: acknowledged, or dropped as ``monitor_error``."""
        with self._lock:
            flights = list(self._in_flight)
        if not flights:
            return
        ready, _ = ray.wait([ref for ref, _ in flights], num_returns=len(flights), timeout=timeout)
        done = set(ready)
        for ref, n in flights:
            if ref not in done:
                continue
            try:
                ray.get(ref, timeout=0)
                state, reason = "acknowledged", ""
            except Exception as exc:
                state, reason = "dropped", MONITOR_ERROR
                self._actor = None  # a dead or replaced monitor: look the name up again
                logger.warning("monitor %s refused %d row(s): %s", self.name, n, str(exc)[:300])
            with self._lock:
                self._count(state, n, reason)
        with self._lock:
            self._in_flight = [(ref, n) for ref, n in self._in_flight if ref not in done]

    def settle(self, timeout: float = 5.0) -> None:
        """Flush, then wait up to ``timeout`` for the sends in flight (tests, shutdown)."""
        with self._send_lock:
            self._flush_locked()
            self._settle(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except Exception:
            pass
