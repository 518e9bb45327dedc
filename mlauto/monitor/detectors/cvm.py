"""Per-feature Cramer-von Mises tests (Alibi Detect CVMDrift); tied (discrete) columns get a KS test."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlauto.monitor.detectors.base import DETECTORS, Detector, corrected_drift


def tied_columns(reference: np.ndarray) -> list[int]:
    """Columns whose reference repeats values (integer codes, one-hot, counts): the asymptotic CVM
    p-value assumes a continuous distribution and on ties comes out far too small (every 50-row window
    of an integer feature alarmed at any p_val, issue 15)."""
    return [j for j in range(reference.shape[1]) if len(np.unique(reference[:, j])) < reference.shape[0]]


@DETECTORS.register("cvm")
class CVMDetector(Detector):
    """Per-feature Cramer-von Mises tests: more sensitive than KS to shifts in the tails.

    Continuous columns: Alibi Detect's CVMDrift. Columns with repeated values in the reference: the
    two-sample KS test (as Alibi's KSDrift computes it; conservative on ties), so a discrete feature
    does not alarm on every window. One correction (Bonferroni or FDR) over all features.
    """

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        from alibi_detect.cd import CVMDrift

        self.tied_ = tied_columns(self.reference)
        self.continuous_ = [j for j in range(self.reference.shape[1]) if j not in self.tied_]
        self.cvm_ = (CVMDrift(self.reference[:, self.continuous_], p_val=self.p_val,
                              correction=self.options["correction"]) if self.continuous_ else None)
        return self

    def predict(self, window: np.ndarray, drift_type: str = "batch") -> dict[str, Any]:
        from scipy.stats import ks_2samp

        window = np.asarray(window, dtype=np.float32)
        d = self.reference.shape[1]
        p_vals, stats = np.ones(d), np.zeros(d)
        if self.cvm_ is not None:
            p, s = self.cvm_.feature_score(self.cvm_.x_ref, window[:, self.continuous_])
            p_vals[self.continuous_], stats[self.continuous_] = p, s
        for j in self.tied_:
            res = ks_2samp(self.reference[:, j], window[:, j], mode="asymp")
            p_vals[j], stats[j] = res.pvalue, res.statistic
        is_drift, threshold = corrected_drift(p_vals, self.p_val, self.options["correction"])
        return {"data": {"is_drift": int(is_drift), "p_val": p_vals, "distance": stats, "threshold": threshold}}
