"""The monitor's small state as JSON values (what the store's state table holds), not a pickle.

Why JSON: a value that was torn or corrupted fails to decode and is skipped and counted, instead of
stopping the monitor; and a restarted monitor of a newer mlauto still reads it. Each piece decodes on
its own, so one bad value costs only that piece.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import Any

import numpy as np

from mlauto.monitor.label_drift import ErrorRateDetector
from mlauto.monitor.performance import PerformanceTracker


def encode_array(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    if array.dtype == object:
        return {"list": array.tolist(), "shape": list(array.shape)}
    return {"dtype": array.dtype.str, "shape": list(array.shape), "b64": base64.b64encode(array.tobytes()).decode()}


def decode_array(value: dict[str, Any]) -> np.ndarray:
    if "list" in value:
        out = np.empty(len(value["list"]), dtype=object)
        out[:] = value["list"]
        return out.reshape(value["shape"])
    data = base64.b64decode(value["b64"], validate=True)
    return np.frombuffer(data, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()


def encode_buffer(buffer: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any] | None:
    """The rows waiting for a full window (one array pair once merged)."""
    if not buffer:
        return None
    rows = np.vstack([b[0] for b in buffer])
    preds = np.concatenate([np.asarray(b[1], dtype=object) for b in buffer])
    return {"rows": encode_array(rows), "predictions": encode_array(preds)}


def decode_buffer(value: dict[str, Any] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    if not value:
        return []
    rows, preds = decode_array(value["rows"]), decode_array(value["predictions"])
    if len(rows) != len(preds):
        raise ValueError("a torn buffer: rows and predictions differ in length")
    return [(rows, preds)]


def encode_performance(perf: PerformanceTracker) -> dict[str, Any]:
    return {"correct": [bool(c) for c in perf.correct], "confidence": list(perf.confidence),
            "errors": list(perf.errors), "labels_total": perf.labels_total}


def restore_performance(value: dict[str, Any], perf: PerformanceTracker, rolling: bool) -> None:
    """The label count always; the rolling windows only when they judge the same model (``rolling``)."""
    perf.labels_total = int(value.get("labels_total", 0))
    if rolling:
        perf.correct = deque((bool(c) for c in value.get("correct", [])), maxlen=perf.window)
        perf.confidence = deque((float(c) for c in value.get("confidence", [])), maxlen=perf.window)
        perf.errors = deque((float(e) for e in value.get("errors", [])), maxlen=perf.window)


def encode_detector(detector: ErrorRateDetector | None) -> dict[str, Any] | None:
    """The label CUSUM's few numbers (its attributes are plain floats and ints)."""
    if detector is None:
        return None
    return {k: v for k, v in vars(detector).items() if v is None or isinstance(v, (int, float, bool, str))}


def decode_detector(value: dict[str, Any] | None, fresh: ErrorRateDetector | None) -> ErrorRateDetector | None:
    """The saved CUSUM over a freshly built one (so attributes added since keep their defaults)."""
    if value is None or fresh is None:
        return fresh
    detector = ErrorRateDetector.__new__(ErrorRateDetector)
    detector.__dict__.update(vars(fresh))
    detector.__dict__.update(value)
    return detector
