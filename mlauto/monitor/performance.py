"""Ground truth that arrives late: join labels to served rows, keep rolling accuracy, estimate it without labels."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np



class PerformanceTracker:
    """Rolling accuracy (classifiers) or RMSE and MAE (regressors) over the last ``window`` labels joined
    to served rows (see :mod:`traffic`).

    ``estimated_accuracy`` is the mean top-class probability of recent rows: a confidence-based
    estimate (like NannyML's CBPE) that needs no labels and is reported beside drift; classifiers only.
    It holds only small rolling state, so it is cheap to persist with the monitor.
    """

    def __init__(self, window: int = 200, min_accuracy: float | None = None, max_rmse: float | None = None) -> None:
        self.window = window
        self.min_accuracy = min_accuracy
        self.max_rmse = max_rmse  # a regressor's floor: rolling RMSE above it is a performance drop
        self.correct: deque[bool] = deque(maxlen=window)
        self.confidence: deque[float] = deque(maxlen=window)
        self.errors: deque[float] = deque(maxlen=window)  # a regressor's label - prediction
        self.labels_total = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        # State saved before regression support has no error window.
        state.setdefault("errors", deque(maxlen=state.get("window", 200)))
        state.setdefault("max_rmse", None)
        self.__dict__.update(state)

    def add_confidence(self, confidence: np.ndarray | None) -> None:
        if confidence is not None:
            self.confidence.extend(float(c) for c in np.asarray(confidence, dtype=float) if not np.isnan(c))

    def add_outcomes(self, correct: list[bool]) -> None:
        self.correct.extend(bool(c) for c in correct)
        self.labels_total += len(correct)

    def add_errors(self, errors: list[float]) -> None:
        """A regressor's labelled rows: the rolling RMSE and MAE stand in for accuracy."""
        self.errors.extend(float(e) for e in errors)
        self.labels_total += len(errors)

    @property
    def rmse(self) -> float | None:
        return float(np.sqrt(np.mean(np.square(self.errors)))) if self.errors else None

    @property
    def accuracy(self) -> float | None:
        return float(np.mean(self.correct)) if self.correct else None

    def degraded(self) -> bool:
        """A full window of labels whose accuracy is below ``min_accuracy`` or whose RMSE is above ``max_rmse``."""
        low_accuracy = (self.min_accuracy is not None and len(self.correct) >= self.window
                        and self.accuracy is not None and self.accuracy < self.min_accuracy)
        high_rmse = (self.max_rmse is not None and len(self.errors) >= self.window
                     and self.rmse is not None and self.rmse > self.max_rmse)
        return low_accuracy or high_rmse

    def reset(self) -> None:
        """A new model: its accuracy starts from fresh labels."""
        self.correct.clear()
        self.confidence.clear()
        self.errors.clear()

    def status(self) -> dict[str, Any]:
        return {
            "labels_total": self.labels_total,
            "window": self.window,
            "window_labels": len(self.correct) + len(self.errors),
            "accuracy": self.accuracy,
            "rmse": self.rmse,
            "mae": float(np.mean(np.abs(self.errors))) if self.errors else None,
            "min_accuracy": self.min_accuracy,
            "max_rmse": self.max_rmse,
            "estimated_accuracy": float(np.mean(self.confidence)) if self.confidence else None,
        }
