"""Ground truth that arrives late: join labels to served rows, keep rolling accuracy, estimate it without labels."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import numpy as np

from mlauto.errors import DuplicateFeedback, UnknownRows


class PerformanceTracker:
    """Served predictions by row id; labels joined to them; accuracy over the last ``window`` labels.

    Only the newest ``max_rows`` served rows are kept for the join, so memory stays bounded.
    ``estimated_accuracy`` is the mean top-class probability of recent rows: a confidence-based
    estimate (like NannyML's CBPE) that needs no labels and is reported beside drift.
    """

    def __init__(self, window: int = 200, min_accuracy: float | None = None, max_rows: int = 100_000) -> None:
        self.window = window
        self.min_accuracy = min_accuracy
        self.max_rows = max_rows
        self.served: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self.labelled: set[str] = set()
        self.correct: deque[bool] = deque(maxlen=window)
        self.confidence: deque[float] = deque(maxlen=window)
        self.labels_total = 0

    def add_served(self, row_ids: list[str], predictions: np.ndarray, confidence: np.ndarray | None) -> None:
        conf = np.full(len(row_ids), np.nan) if confidence is None else np.asarray(confidence, dtype=float)
        for row_id, pred, c in zip(row_ids, predictions, conf):
            self.served[row_id] = (pred.item() if hasattr(pred, "item") else pred, float(c))
            if not np.isnan(c):
                self.confidence.append(float(c))
        while len(self.served) > self.max_rows:
            old, _ = self.served.popitem(last=False)
            self.labelled.discard(old)

    def add_labels(self, row_ids: list[str], labels: list[Any]) -> dict[str, Any]:
        """Join labels; all-or-nothing, so a bad batch changes no counter."""
        unknown = [r for r in row_ids if r not in self.served]
        if unknown:
            raise UnknownRows(unknown[:10])
        dup = [r for r in row_ids if r in self.labelled]
        if dup or len(set(row_ids)) != len(row_ids):
            raise DuplicateFeedback(dup[:10] or row_ids[:10])
        for row_id, label in zip(row_ids, labels):
            pred = self.served[row_id][0]
            self.correct.append(str(pred) == str(label))
            self.labelled.add(row_id)
        self.labels_total += len(row_ids)
        return self.status()

    @property
    def accuracy(self) -> float | None:
        return float(np.mean(self.correct)) if self.correct else None

    def degraded(self) -> bool:
        """A full window of labels whose accuracy is below the threshold."""
        return (self.min_accuracy is not None and len(self.correct) >= self.window
                and self.accuracy is not None and self.accuracy < self.min_accuracy)

    def reset(self) -> None:
        """A new model: its accuracy starts from fresh labels."""
        self.correct.clear()
        self.confidence.clear()

    def status(self) -> dict[str, Any]:
        return {
            "labels_total": self.labels_total,
            "window": self.window,
            "window_labels": len(self.correct),
            "accuracy": self.accuracy,
            "min_accuracy": self.min_accuracy,
            "estimated_accuracy": float(np.mean(self.confidence)) if self.confidence else None,
            "rows_joinable": len(self.served),
        }
