"""Per-feature Kolmogorov-Smirnov tests (Alibi Detect KSDrift)."""

from __future__ import annotations

from typing import Any

from mlauto.monitor.detectors.base import DETECTORS, Detector

@DETECTORS.register("ks")
class KSDetector(Detector):
    """Per-feature Kolmogorov-Smirnov tests, corrected across features (Bonferroni or FDR)."""

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        from alibi_detect.cd import KSDrift

        return KSDrift(self.reference, p_val=self.p_val, correction=self.options["correction"])
