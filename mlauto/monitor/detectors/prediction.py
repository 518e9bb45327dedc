"""Drift of the predictions themselves (the monitor runs it beside the feature detector)."""

from __future__ import annotations

from typing import Any

import numpy as np

def prediction_drift(reference: np.ndarray, window: np.ndarray, classes: list[Any] | None,
                     p_val: float) -> dict[str, Any]:
    """Chi-squared test of the predicted class frequencies in ``window`` against ``reference``;
    for a regressor (``classes`` None) a two-sample Kolmogorov-Smirnov test of the predicted values."""
    from scipy.stats import chisquare, ks_2samp

    if classes is None:
        window = np.asarray(window, dtype=float)
        stat, p = ks_2samp(np.asarray(reference, dtype=float), window)
        return {"statistic": float(stat), "p_val": float(p), "is_drift": bool(p < p_val),
                "window_mean": float(np.mean(window)) if len(window) else None}

    ref = np.array([np.sum(reference == c) for c in classes], dtype=float) + 0.5  # smoothed: no empty class
    obs = np.array([np.sum(window == c) for c in classes], dtype=float) + 0.5
    stat, p = chisquare(obs, f_exp=ref / ref.sum() * obs.sum())
    return {"statistic": float(stat), "p_val": float(p), "is_drift": bool(p < p_val),
            "window_share": dict(zip(map(str, classes), (obs / obs.sum()).round(4).tolist()))}
