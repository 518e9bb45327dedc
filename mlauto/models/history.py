"""Per-epoch training records of iterative estimators (no torch import: tracking and tuning read them)."""

from __future__ import annotations

from typing import Any


def epoch_history(estimator: Any) -> list[dict[str, float]] | None:
    """The per-epoch records (``history_``) of an estimator that keeps them, looking inside pipelines."""
    est = estimator
    while hasattr(est, "steps"):  # a Pipeline: the estimator is its last step
        est = est.steps[-1][1]
    history = getattr(est, "history_", None)
    return [dict(h) for h in history] if history else None
