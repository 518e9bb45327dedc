"""Drift detectors: Alibi Detect (and scipy-only) tests behind one small face, one module each,
registered by name in ``DETECTORS`` when this package is imported.

A new detector is one module here defining a registered :class:`Detector` subclass (every module here is imported)
plus one ``mlauto/conf/monitor/<name>.yaml``; a user's detector is a module listed in ``plugins``.
"""

from typing import Any

from mlauto.registry import import_members
from mlauto.monitor.detectors.base import DETECTORS, Detector, corrected_drift, make_detector
from mlauto.monitor.detectors.cvm import CVMDetector
from mlauto.monitor.detectors.cvm_online import CVMOnlineDetector, default_cache_dir
from mlauto.monitor.detectors.ks import KSDetector
from mlauto.monitor.detectors.mmd import MMDDetector, Standardize, permutation_mmd2
from mlauto.monitor.detectors.prediction import prediction_drift
from mlauto.monitor.detectors.scipy_ks import ScipyKSDetector
from mlauto.monitor.detectors.tabular import TabularDetector

import_members(__name__, __path__)  # every module here is a member: adding one is adding a file

__all__ = ["DETECTORS", "CVMDetector", "CVMOnlineDetector", "Detector", "KSDetector", "MMDDetector",
           "ScipyKSDetector", "Standardize", "TabularDetector", "corrected_drift", "default_cache_dir",
           "make_detector", "permutation_mmd2", "prediction_drift"]


def __getattr__(name: str) -> Any:
    if name == "CachedCVMDriftOnline":  # built on first use (Alibi Detect); its old home, for old pickles
        from mlauto.monitor.detectors import cvm_online

        return cvm_online.CachedCVMDriftOnline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
