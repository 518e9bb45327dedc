"""Per-feature Cramer-von Mises tests (Alibi Detect CVMDrift)."""

from __future__ import annotations

from typing import Any

from mlauto.monitor.detectors.base import DETECTORS, Detector

@DETECTORS.register("cvm")
class CVMDetector(Detector):
    """Per-feature Cramer-von Mises tests: more sensitive than KS to shifts in the tails."""

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        from alibi_detect.cd import CVMDrift

        return CVMDrift(self.reference, p_val=self.p_val, correction=self.options["correction"])
