"""Drift detectors: Alibi Detect tests behind one small face, registered by name."""

from __future__ import annotations

import abc
import time
from typing import Any

import numpy as np

from mlauto.registry import Registry

DETECTORS: Registry["Detector"] = Registry("drift detector", "monitor.detector")


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.atleast_1d(np.asarray(values, dtype=float))]


class Detector(abc.ABC):
    """Fitted on reference (training) features; ``test`` compares a window of live rows with it."""

    def __init__(self, reference: np.ndarray, p_val: float = 0.05, categorical: list[int] | None = None) -> None:
        self.reference = np.asarray(reference, dtype=np.float32)
        self.p_val = p_val
        self.categorical = categorical or []
        self.detector_ = self._build()

    @abc.abstractmethod
    def _build(self) -> Any: ...

    def test(self, window: np.ndarray) -> dict[str, Any]:
        start = time.perf_counter()
        out = self.detector_.predict(np.asarray(window, dtype=np.float32), drift_type="batch")["data"]
        return {
            "detector": type(self).__name__,
            "is_drift": bool(out["is_drift"]),
            "p_vals": _floats(out["p_val"]),
            "statistics": _floats(out["distance"]),
            "threshold": float(out["threshold"]),
            "n_rows": int(len(window)),
            "seconds": time.perf_counter() - start,
            "time": time.time(),
        }


@DETECTORS.register("ks")
class KSDetector(Detector):
    """Per-feature Kolmogorov-Smirnov tests, Bonferroni-corrected across features."""

    def _build(self) -> Any:
        from alibi_detect.cd import KSDrift

        return KSDrift(self.reference, p_val=self.p_val, correction="bonferroni")


@DETECTORS.register("cvm")
class CVMDetector(Detector):
    """Per-feature Cramer-von Mises tests: more sensitive than KS to shifts in the tails."""

    def _build(self) -> Any:
        from alibi_detect.cd import CVMDrift

        return CVMDrift(self.reference, p_val=self.p_val, correction="bonferroni")


@DETECTORS.register("tabular")
class TabularDetector(Detector):
    """KS for numeric features and Chi-squared for one-hot (0/1) ones."""

    def _build(self) -> Any:
        from alibi_detect.cd import TabularDrift

        cats = {int(i): 2 for i in self.categorical}
        return TabularDrift(self.reference, p_val=self.p_val, categories_per_feature=cats, correction="bonferroni")


@DETECTORS.register("scipy_ks")
class ScipyKSDetector(Detector):
    """Per-feature two-sample KS tests from scipy, Bonferroni-corrected: no Alibi Detect import.

    For users who cannot accept Alibi Detect's Business Source License.
    """

    def _build(self) -> Any:
        return self

    def predict(self, window: np.ndarray, drift_type: str = "batch") -> dict[str, Any]:
        from scipy.stats import ks_2samp

        tests = [ks_2samp(self.reference[:, j], window[:, j]) for j in range(self.reference.shape[1])]
        p_vals = np.array([t.pvalue for t in tests])
        threshold = self.p_val / max(1, len(tests))
        return {"data": {"is_drift": int((p_vals < threshold).any()), "p_val": p_vals,
                         "distance": np.array([t.statistic for t in tests]), "threshold": threshold}}


def prediction_drift(reference: np.ndarray, window: np.ndarray, classes: list[Any], p_val: float) -> dict[str, Any]:
    """Chi-squared test of the predicted class frequencies in ``window`` against ``reference``."""
    from scipy.stats import chisquare

    ref = np.array([np.sum(reference == c) for c in classes], dtype=float) + 0.5  # smoothed: no empty class
    obs = np.array([np.sum(window == c) for c in classes], dtype=float) + 0.5
    stat, p = chisquare(obs, f_exp=ref / ref.sum() * obs.sum())
    return {"statistic": float(stat), "p_val": float(p), "is_drift": bool(p < p_val),
            "window_share": dict(zip(map(str, classes), (obs / obs.sum()).round(4).tolist()))}


def make_detector(name: str, reference: np.ndarray, p_val: float, categorical: list[int] | None = None) -> Detector:
    return DETECTORS.get(name)(reference, p_val=p_val, categorical=categorical)
