"""Permutation importance over the raw input columns, scored with the experiment's own metric."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlauto.tasks import metric_mode
from mlauto.tune.metrics import evaluate

logger = logging.getLogger(__name__)

MAX_ROWS = 2000  # permutation cost is columns x repeats x predict(rows): a sample ranks columns just as well


def feature_importance(pipeline: Any, X_val: pd.DataFrame, y_val: Any, task: str, metric: str, seed: int, *,
                       n_repeats: int = 5, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    """How much the validation ``metric`` worsens when one raw column is shuffled (mean and std over repeats).

    ``pipeline`` takes the raw columns (the registered "prep" + "model" Pipeline), so the importance is
    per input column, not per one-hot or encoded feature. Positive: the model relies on the column.
    Rows beyond ``max_rows`` are left out (a seeded sample) to keep it fast.
    """
    from sklearn.inspection import permutation_importance

    X_val = pd.DataFrame(X_val).reset_index(drop=True)
    y_val = np.asarray(y_val)
    if len(X_val) != len(y_val):
        raise ValueError(f"X_val has {len(X_val)} rows but y_val has {len(y_val)}")
    if len(X_val) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(X_val), size=max_rows, replace=False))
        X_val, y_val = X_val.iloc[keep].reset_index(drop=True), y_val[keep]
    sign = 1.0 if metric_mode(metric) == "max" else -1.0

    def scorer(estimator: Any, X: Any, y: Any) -> float:  # higher is better, as sklearn expects
        return sign * evaluate(estimator, X, y, task)[metric]

    result = permutation_importance(pipeline, X_val, y_val, scoring=scorer, n_repeats=n_repeats,
                                    random_state=seed, n_jobs=1)
    frame = pd.DataFrame({"feature": list(X_val.columns), "importance": result.importances_mean,
                          "std": result.importances_std})
    logger.info("permutation importance on %d validation rows, %d columns, %d repeats", len(X_val),
                X_val.shape[1], n_repeats)
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


__all__ = ["MAX_ROWS", "feature_importance"]
