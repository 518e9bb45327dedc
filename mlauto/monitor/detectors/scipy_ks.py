"""Per-feature KS tests from scipy alone: no Alibi Detect import."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlauto.monitor.detectors.base import DETECTORS, Detector, corrected_drift, ks_attribution

@DETECTORS.register("scipy_ks")
class ScipyKSDetector(Detector):
    """Per-feature two-sample KS tests from scipy, corrected across features: no Alibi Detect import.

    For users who cannot accept Alibi Detect's Business Source License.
    """

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        return self

    def predict(self, window: np.ndarray, drift_type: str = "batch") -> dict[str, Any]:
        p_vals, stats = ks_attribution(self.reference, window)
        is_drift, threshold = corrected_drift(np.array(p_vals), self.p_val, self.options["correction"])
        return {"data": {"is_drift": int(is_drift), "p_val": np.array(p_vals), "distance": np.array(stats),
                         "threshold": threshold}}
