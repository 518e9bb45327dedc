"""The drift detector base class and its registry; one module per detector sits beside this one.

Every detector is built once per model version from the reference (training) features and tests
tumbling windows of live rows with ``test(window) -> dict`` (keys: is_drift, p_vals, statistics,
threshold, n_rows, seconds, time, ...). ``p_vals`` always holds one p-value per feature so the
monitor can name the feature that moved most; multivariate and online detectors fill it with
per-feature KS p-values as attribution and report their own decision in ``p_val`` / ``alarms``.
"""

from __future__ import annotations

import abc
import time
from typing import Any, ClassVar

import numpy as np

from mlauto.config.schema import Correction
from mlauto.errors import ConfigError
from mlauto.registry import Registry

DETECTORS: Registry["Detector"] = Registry("drift detector", "monitor.detector")


def floats(values: Any) -> list[float]:
    return [float(v) for v in np.atleast_1d(np.asarray(values, dtype=float))]


def ks_attribution(reference: np.ndarray, window: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-feature two-sample KS p-values and statistics: which feature moved most."""
    from scipy.stats import ks_2samp

    tests = [ks_2samp(reference[:, j], window[:, j]) for j in range(reference.shape[1])]
    return [float(t.pvalue) for t in tests], [float(t.statistic) for t in tests]


class Detector(abc.ABC):
    """Fitted on reference (training) features; ``test`` compares a window of live rows with it.

    ``OPTIONS`` lists the options a detector takes (from ``monitor.options``) with their defaults;
    an unknown option fails naming the valid ones.
    """

    OPTIONS: ClassVar[dict[str, Any]] = {}
    # The option naming a folder where the detector keeps what it builds once and reuses (e.g. simulated
    # thresholds); a monitor with a state folder points it there unless the user set it. None: nothing kept.
    CACHE_OPTION: ClassVar[str | None] = None

    def __init__(self, reference: np.ndarray, p_val: float = 0.05, categorical: list[int] | None = None,
                 **options: Any) -> None:
        self.reference = np.asarray(reference, dtype=np.float32)
        self.p_val = p_val
        self.categorical = categorical or []
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise ConfigError("monitor.options", unknown, sorted(self.OPTIONS) or "no options",
                              f"detector {type(self).__name__} does not take these options")
        self.options = {**self.OPTIONS, **options}
        self._check_options()
        self.detector_ = self._build()

    def _check_options(self) -> None:
        correction = self.options.get("correction")
        if "correction" in self.OPTIONS and correction not in Correction.values():
            raise ConfigError("monitor.correction", correction, Correction.values())

    @abc.abstractmethod
    def _build(self) -> Any: ...

    def test(self, window: np.ndarray) -> dict[str, Any]:
        start = time.perf_counter()
        out = self.detector_.predict(np.asarray(window, dtype=np.float32), drift_type="batch")["data"]
        return {
            "detector": type(self).__name__,
            "is_drift": bool(out["is_drift"]),
            "p_vals": floats(out["p_val"]),
            "statistics": floats(out["distance"]),
            # FDR: Alibi returns the Benjamini-Hochberg thresholds per rank; report the level
            "threshold": float(out["threshold"]) if np.size(out["threshold"]) == 1 else self.p_val,
            "correction": self.options.get("correction"),
            "n_rows": int(len(window)),
            "seconds": time.perf_counter() - start,
            "time": time.time(),
        }


def corrected_drift(p_vals: np.ndarray, p_val: float, correction: str) -> tuple[bool, float]:
    """Drift decision over per-feature p-values; returns (is_drift, threshold) like Alibi Detect.

    Bonferroni compares each p-value with ``p_val / d``; FDR is Benjamini-Hochberg at level ``p_val``.
    """
    d = max(1, len(p_vals))
    if correction == "bonferroni":
        threshold = p_val / d
        return bool((p_vals < threshold).any()), threshold
    ranked = np.sort(p_vals)
    return bool((ranked < p_val * np.arange(1, d + 1) / d).any()), p_val


def make_detector(name: str, reference: np.ndarray, p_val: float, categorical: list[int] | None = None,
                  correction: str | None = None, **options: Any) -> Detector:
    """Build the detector registered as ``name``.

    ``correction`` (``monitor.correction``) goes to the per-feature detectors and is ignored by the
    multivariate and online ones, which make one decision and need none. ``options`` come from
    ``monitor.options``; an unknown name or option fails listing the valid ones.
    """
    cls = DETECTORS.get(name)
    if correction is not None and "correction" in cls.OPTIONS:
        options = {**options, "correction": correction}  # checked where every option is: Detector.__init__
    return cls(reference, p_val=p_val, categorical=categorical, **options)
