"""KS for numeric features, Chi-squared for one-hot ones (Alibi Detect TabularDrift)."""

from __future__ import annotations

from typing import Any

from mlauto.monitor.detectors.base import DETECTORS, Detector

@DETECTORS.register("tabular")
class TabularDetector(Detector):
    """KS for numeric features and Chi-squared for one-hot (0/1) ones."""

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        from alibi_detect.cd import TabularDrift

        cats = {int(i): 2 for i in self.categorical}
        return TabularDrift(self.reference, p_val=self.p_val, categories_per_feature=cats,
                            correction=self.options["correction"])
