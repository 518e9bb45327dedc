"""Drift monitoring in a Ray actor, with retraining on drift."""

from mlauto.monitor.actor import Monitor, start_monitor, stop_monitor
from mlauto.monitor.detectors import DETECTORS, Detector, make_detector
from mlauto.monitor.label_drift import ErrorRateDetector

__all__ = ["DETECTORS", "Detector", "ErrorRateDetector", "Monitor", "make_detector", "start_monitor",
           "stop_monitor"]
