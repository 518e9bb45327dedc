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


def make_detector(name: str, reference: np.ndarray, p_val: float, categorical: list[int] | None = None) -> Detector:
    return DETECTORS.get(name)(reference, p_val=p_val, categorical=categorical)
