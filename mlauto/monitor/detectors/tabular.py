"""KS for numeric features, Chi-squared for one-hot ones (Alibi Detect TabularDrift's tests)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlauto.monitor.detectors.base import DETECTORS, Detector, corrected_drift


@DETECTORS.register("tabular")
class TabularDetector(Detector):
    """KS for numeric features and Chi-squared for one-hot (0/1) ones.

    The tests of Alibi Detect's TabularDrift (two-sample KS, mode 'asymp'; chi-squared on the
    2 x categories contingency table), with one fix: a category seen in neither the reference nor
    the window is dropped from the table, and a column left with one category gets p = 1 (Alibi
    raised ValueError on a 0/1 column constant at the same value in both, issue 15).
    """

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        self.categorical_ = sorted({int(i) for i in self.categorical})
        return self

    def predict(self, window: np.ndarray, drift_type: str = "batch") -> dict[str, Any]:
        from scipy.stats import chi2_contingency, ks_2samp

        window = np.asarray(window, dtype=np.float32)
        d = self.reference.shape[1]
        p_vals, stats = np.ones(d), np.zeros(d)
        for j in range(d):
            ref, win = self.reference[:, j], window[:, j]
            if j in self.categorical_:
                values = np.union1d(np.unique(ref), np.unique(win))
                table = np.array([[np.sum(ref == v) for v in values], [np.sum(win == v) for v in values]])
                if table.shape[1] > 1:
                    stats[j], p_vals[j], _, _ = chi2_contingency(table)
            else:
                res = ks_2samp(ref, win, mode="asymp")
                p_vals[j], stats[j] = res.pvalue, res.statistic
        is_drift, threshold = corrected_drift(p_vals, self.p_val, self.options["correction"])
        return {"data": {"is_drift": int(is_drift), "p_val": p_vals, "distance": stats, "threshold": threshold}}
