"""Sample-size runs: how much training data the top configs need, and what each costs to train.

Each (config, fraction) pair is one Ray task; the training and validation matrices go into the
object store once. The result answers "which config and how much data gives nearly the best score
for the least training time" (:attr:`Curves.fastest_within`) and shows the trade-off (:attr:`Curves.pareto`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import ray
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from mlauto.config.schema import SampleSizeConf
from mlauto.errors import MlautoError
from mlauto.models import FAMILIES
from mlauto.tune.search import TrialResult

logger = logging.getLogger(__name__)

CURVE_COLUMNS = ["config_id", "family", "params", "fraction", "n_train", "train_seconds", "score"]


def pareto_front(frame: pd.DataFrame, mode: str, *, time_col: str = "train_seconds",
                 score_col: str = "score") -> pd.DataFrame:
    """The rows no other row dominates: none is at least as fast and at least as good, and better in one.

    ``mode`` is the metric's direction (max: higher scores are better). Rows without a score are left
    out. Sorted fastest first.
    """
    if mode not in ("max", "min"):
        raise MlautoError(f"mode must be 'max' or 'min', got {mode!r}")
    rows = frame[frame[score_col].notna() & frame[time_col].notna()]
    times = rows[time_col].to_numpy(dtype=float)
    scores = rows[score_col].to_numpy(dtype=float) * (1.0 if mode == "max" else -1.0)  # higher is better
    keep = []
    for i in range(len(rows)):
        no_worse = (times <= times[i]) & (scores >= scores[i])
        strictly = (times < times[i]) | (scores > scores[i])
        keep.append(not np.any(no_worse & strictly))
    front = rows[np.asarray(keep, dtype=bool)] if len(rows) else rows
    return front.sort_values([time_col, score_col], ascending=[True, mode == "min"], kind="stable").reset_index(drop=True)


def fastest_within(frame: pd.DataFrame, mode: str, tolerance: float, *, time_col: str = "train_seconds",
                   score_col: str = "score") -> dict[str, Any]:
    """The fastest-to-train row whose score is within ``tolerance`` of the best score.

    ``tolerance`` is absolute, in the metric's own units (0.01 roc_auc, or 0.01 rmse in the target's
    units), not relative. Ties on time go to the better score. Empty dict when no row has a score.
    """
    if tolerance < 0:
        raise MlautoError(f"tolerance must be >= 0, got {tolerance}")
    rows = frame[frame[score_col].notna() & frame[time_col].notna()]
    if rows.empty:
        return {}
    sign = 1.0 if mode == "max" else -1.0
    best = float((rows[score_col] * sign).max())
    close = rows[rows[score_col] * sign >= best - tolerance]
    pick = close.sort_values([time_col, score_col], ascending=[True, mode == "min"], kind="stable").iloc[0]
    out = {k: _plain(pick[k]) for k in ("config_id", "family", "params", "fraction", "score", "train_seconds")
           if k in pick.index}
    out["tolerance"] = float(tolerance)
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


@dataclass
class Curves:
    """Sample-size runs: ``frame`` has one row per (config, fraction), columns :data:`CURVE_COLUMNS`."""

    frame: pd.DataFrame
    metric: str
    mode: str
    tolerance: float

    @property
    def pareto(self) -> pd.DataFrame:
        """Non-dominated rows of training seconds vs score (see :func:`pareto_front`)."""
        return pareto_front(self.frame, self.mode)

    @property
    def fastest_within(self) -> dict[str, Any]:
        """Fastest row within ``tolerance`` (absolute, in the metric's units) of the best score."""
        return fastest_within(self.frame, self.mode, self.tolerance)


def subsample(y: np.ndarray, fraction: float, task: str, seed: int) -> np.ndarray:
    """Row indices of a seeded ``fraction`` of the training set; stratified on ``y`` for classification.

    Stratification falls back to a plain random draw when a class is too small to split.
    """
    n = len(y)
    if not 0.0 < fraction <= 1.0:
        raise MlautoError(f"sample-size fractions must be in (0, 1], got {fraction}")
    if fraction >= 1.0:
        return np.arange(n)
    index = np.arange(n)
    size = max(2, int(round(fraction * n)))
    if size >= n:
        return index
    stratify = y if task != "regression" else None
    try:
        picked, _ = train_test_split(index, train_size=size, stratify=stratify, random_state=seed)
    except ValueError:  # a class with one row, or fewer rows than classes
        picked, _ = train_test_split(index, train_size=size, random_state=seed)
    return np.sort(picked)


def _fit_on_fraction(data: tuple, rows: np.ndarray, family: Any, params: dict[str, Any], seed: int,
                     metric: str, task: str, threads: int) -> dict[str, Any]:
    import torch

    from mlauto.models import build_estimator
    from mlauto.tune.metrics import evaluate

    torch.set_num_threads(threads)
    X_tr, y_tr, X_va, y_va = data
    est = build_estimator(family, params, seed, task)
    start = time.perf_counter()
    est.fit(X_tr[rows], y_tr[rows])
    seconds = time.perf_counter() - start
    return {"train_seconds": seconds, "score": evaluate(est, X_va, y_va, task)[metric]}


def sample_size_runs(
    trials: Sequence[TrialResult],
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    conf: SampleSizeConf,
    metric: str,
    mode: str,
    task: str,
    seed: int,
    cpus_per_task: float = 1.0,
) -> Curves:
    """Retrain each of ``trials``' configs on each of ``conf.fractions`` of the training rows, in parallel
    Ray tasks.

    Every row records the validation ``metric`` and the training seconds; a fit that fails keeps its
    row with a NaN score and the error. Needs a running Ray (the pipeline's).
    """
    fractions = sorted(set(float(f) for f in conf.fractions))
    data_ref = ray.put(data)
    fit = ray.remote(_fit_on_fraction).options(num_cpus=cpus_per_task)
    threads = max(1, int(cpus_per_task))
    jobs, rows = [], []
    for trial in trials:
        for fraction in fractions:
            picked = subsample(data[1], fraction, task, seed)
            rows.append({"config_id": trial.trial_id, "family": trial.family, "params": dict(trial.params),
                         "fraction": fraction, "n_train": len(picked)})
            jobs.append(fit.remote(data_ref, picked, FAMILIES.get(trial.family), trial.params, seed, metric, task,
                                   threads))  # the class, so a plugin family registered only here travels by value
    logger.info("sample-size runs: %d config(s) x fractions %s = %d fits", len(trials), fractions, len(jobs))
    for row, job in tqdm(list(zip(rows, jobs)), desc="sample-size runs",
                            disable=True if len(jobs) < 8 else None):  # None: off when stderr is no terminal
        try:
            row.update(ray.get(job))
        except Exception as exc:  # noqa: BLE001 - one failed fit keeps its row, the others still count
            logger.warning("sample-size run %s at %.2f failed: %r", row["config_id"], row["fraction"], exc)
            row.update(train_seconds=math.nan, score=math.nan, error=repr(exc))
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=[*CURVE_COLUMNS, *[c for c in frame.columns if c not in CURVE_COLUMNS]])
    return Curves(frame, metric, mode, conf.tolerance)


__all__ = ["CURVE_COLUMNS", "Curves", "fastest_within", "pareto_front", "sample_size_runs", "subsample"]
