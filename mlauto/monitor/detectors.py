"""Drift detectors: Alibi Detect (and scipy-only) tests behind one small face, registered by name.

Every detector is built once per model version from the reference (training) features and tests
tumbling windows of live rows with ``test(window) -> dict`` (keys: is_drift, p_vals, statistics,
threshold, n_rows, seconds, time, ...). ``p_vals`` always holds one p-value per feature so the
monitor can name the feature that moved most; multivariate and online detectors fill it with
per-feature KS p-values as attribution and report their own decision in ``p_val`` / ``alarms``.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import logging
import os
import time
from typing import Any, ClassVar

import numpy as np

from mlauto.config.schema import Correction
from mlauto.errors import ConfigError
from mlauto.registry import Registry

logger = logging.getLogger(__name__)

DETECTORS: Registry["Detector"] = Registry("drift detector", "monitor.detector")


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.atleast_1d(np.asarray(values, dtype=float))]


def _ks_attribution(reference: np.ndarray, window: np.ndarray) -> tuple[list[float], list[float]]:
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
            "p_vals": _floats(out["p_val"]),
            "statistics": _floats(out["distance"]),
            # FDR: Alibi returns the Benjamini-Hochberg thresholds per rank; report the level
            "threshold": float(out["threshold"]) if np.size(out["threshold"]) == 1 else self.p_val,
            "correction": self.options.get("correction"),
            "n_rows": int(len(window)),
            "seconds": time.perf_counter() - start,
            "time": time.time(),
        }


@DETECTORS.register("ks")
class KSDetector(Detector):
    """Per-feature Kolmogorov-Smirnov tests, corrected across features (Bonferroni or FDR)."""

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        from alibi_detect.cd import KSDrift

        return KSDrift(self.reference, p_val=self.p_val, correction=self.options["correction"])


@DETECTORS.register("cvm")
class CVMDetector(Detector):
    """Per-feature Cramer-von Mises tests: more sensitive than KS to shifts in the tails."""

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        from alibi_detect.cd import CVMDrift

        return CVMDrift(self.reference, p_val=self.p_val, correction=self.options["correction"])


@DETECTORS.register("tabular")
class TabularDetector(Detector):
    """KS for numeric features and Chi-squared for one-hot (0/1) ones."""

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        from alibi_detect.cd import TabularDrift

        cats = {int(i): 2 for i in self.categorical}
        return TabularDrift(self.reference, p_val=self.p_val, categories_per_feature=cats,
                            correction=self.options["correction"])


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


@DETECTORS.register("scipy_ks")
class ScipyKSDetector(Detector):
    """Per-feature two-sample KS tests from scipy, corrected across features: no Alibi Detect import.

    For users who cannot accept Alibi Detect's Business Source License.
    """

    OPTIONS = {"correction": "bonferroni"}

    def _build(self) -> Any:
        return self

    def predict(self, window: np.ndarray, drift_type: str = "batch") -> dict[str, Any]:
        p_vals, stats = _ks_attribution(self.reference, window)
        is_drift, threshold = corrected_drift(np.array(p_vals), self.p_val, self.options["correction"])
        return {"data": {"is_drift": int(is_drift), "p_val": np.array(p_vals), "distance": np.array(stats),
                         "threshold": threshold}}


class Standardize:
    """Scale features by the reference's mean and standard deviation (picklable, for Alibi's preprocess_fn).

    mlauto's preprocessing leaves numeric features on their own scales (in breast_cancer, ``mean area``
    is ~10^3 and ``mean smoothness`` ~10^-1); an RBF kernel on raw features then sees only the largest.
    """

    def __init__(self, reference: np.ndarray) -> None:
        self.mean = reference.mean(axis=0)
        std = reference.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)


def permutation_mmd2(kernel_mat: Any, m: int, n_permutations: int, generator: Any) -> tuple[float, float, Any]:
    """Unbiased MMD^2 of the last ``m`` rows against the rest and its permutation p-value.

    All permutations at once: with ``z`` marking the test rows and the diagonal zeroed,
    ``S_yy = z'Kz``, ``S_xy = z'K1 - S_yy`` and ``S_xx = 1'K1 - 2 S_xy - S_yy``. The p-value counts the
    observed statistic as one of the permutations, ``(1 + #{perm >= obs}) / (1 + P)`` (Alibi Detect
    0.13 leaves it out, issue #960, so its p-value can be 0 and is biased low). Returns
    (p_value, observed MMD^2, the permuted MMD^2 values).
    """
    import torch

    k = kernel_mat.double()
    k = k - torch.diag(torch.diag(k))
    total = k.shape[0]
    n = total - m
    row_sums = k.sum(1)
    s_all = row_sums.sum()
    order = torch.argsort(torch.rand(n_permutations, total, generator=generator), dim=1)[:, :m]
    z = torch.zeros(n_permutations + 1, total, dtype=k.dtype)
    z[0, n:] = 1.0  # the observed split first
    z[1:].scatter_(1, order, 1.0)
    s_yy = ((z @ k) * z).sum(1)
    s_xy = z @ row_sums - s_yy
    s_xx = s_all - 2 * s_xy - s_yy
    mmd2 = s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2 * s_xy / (n * m)
    observed, permuted = mmd2[0], mmd2[1:]
    p_value = (1.0 + (permuted >= observed).sum().item()) / (1.0 + n_permutations)
    return p_value, observed.item(), permuted


@DETECTORS.register("mmd")
class MMDDetector(Detector):
    """Multivariate Maximum Mean Discrepancy (Alibi Detect MMDDrift, PyTorch backend), calibrated.

    Calibration fixes over a plain ``MMDDrift(reference)``: features are standardized by the
    reference before the RBF kernel (median-heuristic bandwidth from the reference); the reference
    is subsampled to ``n_ref`` rows (seeded); the permutation test runs all ``n_permutations`` at
    once with the observed statistic counted (issue #960); ``seed`` makes a run's p-values
    reproducible. Windows need >= 2 rows. One test is one decision, so no correction across features is needed.
    """

    OPTIONS = {"n_ref": 1000, "n_permutations": 1000, "seed": 0, "device": "cpu"}

    def _build(self) -> Any:
        import torch
        from alibi_detect.cd.pytorch.mmd import MMDDriftTorch

        rng = np.random.default_rng(self.options["seed"])
        ref = self.reference
        if len(ref) > self.options["n_ref"]:
            ref = ref[np.sort(rng.choice(len(ref), self.options["n_ref"], replace=False))]
        self.scale_ = Standardize(self.reference)
        self.generator_ = torch.Generator().manual_seed(int(self.options["seed"]))
        return MMDDriftTorch(ref, p_val=self.p_val, preprocess_fn=self.scale_, device=self.options["device"],
                             n_permutations=self.options["n_permutations"])

    def test(self, window: np.ndarray) -> dict[str, Any]:
        import torch

        start = time.perf_counter()
        window = np.asarray(window, dtype=np.float32)
        det = self.detector_
        x_ref, x = det.preprocess(window)
        kernel_mat = det.kernel_matrix(torch.from_numpy(x_ref).to(det.device), torch.from_numpy(x).to(det.device))
        p_value, mmd2, permuted = permutation_mmd2(kernel_mat.cpu(), len(x), self.options["n_permutations"],
                                                   self.generator_)
        distance_threshold = float(torch.quantile(permuted, 1.0 - self.p_val))
        p_vals, _ = _ks_attribution(self.reference, window)
        return {
            "detector": type(self).__name__,
            "is_drift": bool(p_value < self.p_val),
            "p_val": p_value,
            "mmd2": mmd2,
            "distance_threshold": distance_threshold,
            "p_vals": p_vals,  # per-feature KS attribution; the decision is the MMD's p_val
            "statistics": [mmd2],
            "threshold": self.p_val,
            "n_rows": int(len(window)),
            "seconds": time.perf_counter() - start,
            "time": time.time(),
        }


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

    OPTIONS = {"ert": 2000, "window_sizes": [30], "n_bootstraps": None, "n_ref": 300, "seed": 0,
               "cache_dir": None}

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
        p_vals, _ = _ks_attribution(self.reference, window)
        return {
            "detector": type(self).__name__,
            "is_drift": bool(alarms),
            "at_row": alarms[0] if alarms else None,
            "alarms": alarms,
            "ert": float(self.options["ert"]),
            "p_vals": p_vals,  # per-feature KS attribution; the decision is the online alarm
            "statistics": _floats(stats),
            "threshold": threshold,
            "stream_t": int(det.t),
            "n_rows": int(len(window)),
            "seconds": time.perf_counter() - start,
            "time": time.time(),
        }

    def reset(self) -> None:
        """Restart the stream (thresholds kept): for a new model version or a known change."""
        self.detector_.reset_state()


def prediction_drift(reference: np.ndarray, window: np.ndarray, classes: list[Any] | None,
                     p_val: float) -> dict[str, Any]:
    """Chi-squared test of the predicted class frequencies in ``window`` against ``reference``;
    for a regressor (``classes`` None) a two-sample Kolmogorov-Smirnov test of the predicted values."""
    from scipy.stats import chisquare, ks_2samp

    if classes is None:
        window = np.asarray(window, dtype=float)
        stat, p = ks_2samp(np.asarray(reference, dtype=float), window)
        return {"statistic": float(stat), "p_val": float(p), "is_drift": bool(p < p_val),
                "window_mean": float(np.mean(window)) if len(window) else None}

    ref = np.array([np.sum(reference == c) for c in classes], dtype=float) + 0.5  # smoothed: no empty class
    obs = np.array([np.sum(window == c) for c in classes], dtype=float) + 0.5
    stat, p = chisquare(obs, f_exp=ref / ref.sum() * obs.sum())
    return {"statistic": float(stat), "p_val": float(p), "is_drift": bool(p < p_val),
            "window_share": dict(zip(map(str, classes), (obs / obs.sum()).round(4).tolist()))}


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
