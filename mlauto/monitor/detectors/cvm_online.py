"""Online Cramer-von Mises with an expected run time (Alibi Detect CVMDriftOnline), its simulated
thresholds cached on disk."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from typing import Any

import numpy as np

from mlauto.errors import ConfigError
from mlauto.monitor.detectors.base import DETECTORS, Detector, floats, ks_attribution

logger = logging.getLogger(__name__)

def _threshold_key(**settings: Any) -> str:
    text = repr(sorted(settings.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def _cvm_online_class() -> type:
    """CVMDriftOnline whose simulated thresholds are cached on disk.

    Built on first use so importing mlauto does not import Alibi Detect; module ``__getattr__``
    returns it under its module-level name, so pickle finds it.
    """
    from alibi_detect.cd import CVMDriftOnline

    class CachedCVMDriftOnline(CVMDriftOnline):
        """The thresholds are rank-based, so they depend only on (reference size, window sizes, ERT,
        features, bootstraps), never on the reference values: cache them under those settings and
        any reference of that size reuses them (a promotion rebuilds the detector in milliseconds)."""

        def __init__(self, *args: Any, cache_dir: str | None = None, **kwargs: Any) -> None:
            self.cache_dir = cache_dir
            super().__init__(*args, **kwargs)

        def _configure_thresholds(self) -> None:
            key = _threshold_key(n=self.n, window_sizes=tuple(self.window_sizes), ert=self.ert,
                                 n_features=self.n_features, n_bootstraps=self.n_bootstraps)
            path = os.path.join(self.cache_dir, f"cvm_online-{key}.npy") if self.cache_dir else None
            if path and os.path.exists(path):
                self.thresholds = np.load(path)
                return
            logger.info("simulating CVM online thresholds (%d bootstraps); cached at %s", self.n_bootstraps, path)
            super()._configure_thresholds()
            if path:
                os.makedirs(self.cache_dir, exist_ok=True)
                tmp = f"{path}.{os.getpid()}.tmp.npy"
                np.save(tmp, self.thresholds)
                os.replace(tmp, path)

    CachedCVMDriftOnline.__module__ = __name__
    CachedCVMDriftOnline.__qualname__ = "CachedCVMDriftOnline"
    return CachedCVMDriftOnline


def __getattr__(name: str) -> Any:
    if name == "CachedCVMDriftOnline":
        return _cvm_online_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_cache_dir() -> str:
    return os.environ.get("MLAUTO_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "mlauto", "detectors")


@DETECTORS.register("cvm_online")
class CVMOnlineDetector(Detector):
    """Online Cramer-von Mises (Alibi Detect CVMDriftOnline) with an expected run time (ERT).

    Rows are fed one at a time; an alarm fires when a sliding window's statistic crosses the
    threshold simulated for ``ert`` (expected rows between false alarms with no drift; Alibi
    assumes independent features, so correlated features give a longer real ERT). After an
    alarm the stream restarts, so each alarm is counted once. The threshold simulation is slow
    (``n_bootstraps``, by default 1.6 * ert * n_features, streams: about a minute per 50,000 on
    one core), so it is cached in ``cache_dir``; the reference is subsampled to ``n_ref`` rows.
    ``p_val`` is not used.
    State (the last rows, the time since the last restart) pickles with the detector.
    """

    OPTIONS = {"ert": 20000, "window_sizes": [30], "n_bootstraps": None, "n_ref": 300, "seed": 0,
               "cache_dir": None}
    CACHE_OPTION = "cache_dir"  # simulated thresholds: build once, keep (in the monitor's state folder)

    def _check_options(self) -> None:
        ert, d = float(self.options["ert"]), self.reference.shape[1]
        beta = 1 - (1 - 1 / ert) ** (1 / d)  # Alibi's per-feature false-alarm rate per row
        if self.options["n_bootstraps"] is None:  # enough simulated streams for that quantile
            self.options["n_bootstraps"] = int(np.ceil(1.6 / beta))
        boots = int(self.options["n_bootstraps"])
        if boots * beta < 1.5:
            raise ConfigError("monitor.options.n_bootstraps", boots, f"an integer >= {int(np.ceil(1.5 / beta))}",
                              f"ert={ert:g} over {d} features needs that many simulated streams; "
                              "lower monitor.options.ert or raise n_bootstraps")

    def _build(self) -> Any:
        rng = np.random.default_rng(self.options["seed"])
        ref = self.reference
        if len(ref) > self.options["n_ref"]:
            ref = ref[np.sort(rng.choice(len(ref), self.options["n_ref"], replace=False))]
        np.random.seed(int(self.options["seed"]))  # Alibi simulates with the global RNG
        det = _cvm_online_class()(ref, ert=float(self.options["ert"]), window_sizes=list(self.options["window_sizes"]),
                                  n_bootstraps=int(self.options["n_bootstraps"]), verbose=False,
                                  cache_dir=self.options["cache_dir"] or default_cache_dir())
        self.rows_seen_ = 0
        self.alarms_ = 0
        return det

    def test(self, window: np.ndarray) -> dict[str, Any]:
        start = time.perf_counter()
        window = np.asarray(window, dtype=np.float32)
        det = self.detector_
        alarms: list[int] = []
        stats = np.zeros(self.reference.shape[1])
        threshold = float("nan")
        for i, row in enumerate(window):
            out = det.predict(row, return_test_stat=True)["data"]
            stats = np.nanmax(out["test_stat"], axis=0) if det.t >= min(det.window_sizes) else stats
            threshold = float(np.ravel(out["threshold"])[0])
            # Alibi keeps every row and statistic it saw; only the last max_ws rows are ever read.
            det.xs = det.xs[-det.max_ws:]
            det.test_stats = det.test_stats[-1:]
            det.drift_preds = det.drift_preds[-1:]
            if out["is_drift"]:
                alarms.append(i)
                det.reset_state()
        self.rows_seen_ += len(window)
        self.alarms_ += len(alarms)
        p_vals, _ = ks_attribution(self.reference, window)
        return {
            "detector": type(self).__name__,
            "is_drift": bool(alarms),
            "at_row": alarms[0] if alarms else None,
            "alarms": alarms,
            "ert": float(self.options["ert"]),
            "p_vals": p_vals,  # per-feature KS attribution; the decision is the online alarm
            "statistics": floats(stats),
            "threshold": threshold,
            "stream_t": int(det.t),
            "n_rows": int(len(window)),
            "seconds": time.perf_counter() - start,
            "time": time.time(),
        }

    def reset(self) -> None:
        """Restart the stream (thresholds kept): for a new model version or a known change."""
        self.detector_.reset_state()
