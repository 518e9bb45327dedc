"""One Ray Tune search over every chosen model family, with a conditional Optuna space."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from mlauto.errors import MlautoError
from mlauto.models import build_estimator, epoch_history
from mlauto.tune.metrics import evaluate

logger = logging.getLogger(__name__)


@dataclass
class TrialResult:
    trial_id: str
    family: str
    params: dict[str, Any]
    metrics: dict[str, float]
    status: str  # "ok", "failed" or "stopped" (by the time budget before any report)
    error: str | None = None

    @property
    def score(self) -> float:
        return self.metrics.get("score", math.nan)


@dataclass
class SearchResult:
    trials: list[TrialResult]
    best: TrialResult
    metric: str
    mode: str
    storage_path: str
    wall_seconds: float = 0.0

    def leaderboard(self) -> pd.DataFrame:
        rows = [
            {"trial_id": t.trial_id, "family": t.family, "status": t.status, "score": t.score,
             "train_seconds": t.metrics.get("train_seconds", math.nan), **{f"param_{k}": v for k, v in t.params.items()}}
            for t in self.trials
        ]
        frame = pd.DataFrame(rows)
        return frame.sort_values("score", ascending=self.mode == "min", na_position="last").reset_index(drop=True)


def _suggest(trial: optuna.Trial, name: str, spec: dict[str, Any]) -> Any:
    kind = spec["type"]
    if kind == "loguniform":
        return trial.suggest_float(name, spec["low"], spec["high"], log=True)
    if kind == "uniform":
        return trial.suggest_float(name, spec["low"], spec["high"])
    if kind == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]))
    if kind == "logint":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=True)
    return trial.suggest_categorical(name, list(spec["values"]))


class ConditionalSpace:
    """Define-by-run space: pick a family, then only that family's params (prefixed ``family.``).

    A class rather than a closure: Tune pickles the searcher into its experiment state.
    """

    def __init__(self, families: dict[str, dict[str, Any]]) -> None:
        self.families = families

    def __call__(self, trial: optuna.Trial) -> None:
        family = trial.suggest_categorical("family", sorted(self.families))
        for param, spec in self.families[family]["space"].items():
            _suggest(trial, f"{family}.{param}", spec)


def warm_start_point(families: dict[str, dict[str, Any]], family: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """A known config in the search's own terms, or None when its family is not being searched."""
    if family not in families:
        return None
    space = families[family]["space"]
    return {"family": family, **{f"{family}.{k}": v for k, v in params.items() if k in space}}


def trial_params(config: dict[str, Any], families: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Family name and its full constructor params (fixed ones plus the sampled ones)."""
    family = config["family"]
    prefix = f"{family}."
    sampled = {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}
    return family, {**families[family].get("fixed", {}), **sampled}


def _trainable(config: dict[str, Any], data: tuple, families: dict, seed: int, metric: str, threads: int,
               task: str = "binary") -> None:
    import torch

    torch.set_num_threads(threads)
    X_tr, y_tr, X_va, y_va = data
    family, params = trial_params(config, families)
    est = build_estimator(family, params, seed, task)
    start = time.perf_counter()
    est.fit(X_tr, y_tr)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = evaluate(est, X_va, y_va, task)
    infer_ms = (time.perf_counter() - start) * 1000.0 / max(1, len(y_va))
    tune.report(
        {
            **{f"val_{k}": v for k, v in scores.items()},
            "score": scores[metric],
            "train_seconds": train_seconds,
            "infer_ms_per_row": infer_ms,
            "n_train": len(y_tr),
            # per-epoch records (the MLP's history_): tracking logs them as steps; TrialResult leaves them out
            **({"history": history} if (history := epoch_history(est)) else {}),
        }
    )


def run_search(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    families: dict[str, dict[str, Any]],
    *,
    metric: str,
    mode: str,
    num_samples: int,
    algorithm: str,
    seed: int,
    storage_path: str,
    name: str,
    cpus_per_trial: float = 1.0,
    max_concurrent: int = 0,
    time_budget_s: float | None = None,
    max_failures: int = 1,
    points_to_evaluate: list[dict[str, Any]] | None = None,
    task: str = "binary",
) -> SearchResult:
    """Run the search; trials get the data from the object store, placed there once.

    ``points_to_evaluate`` (e.g. the champion's config, see :func:`warm_start_point`) run first.
    """
    if not families:
        raise MlautoError("no model families to search; select some, e.g. models=all")
    cpus = ray.available_resources().get("CPU", 1.0) or 1.0
    concurrency = max_concurrent or max(1, int(cpus // cpus_per_trial))
    sampler = (
        optuna.samplers.TPESampler(seed=seed) if algorithm == "optuna" else optuna.samplers.RandomSampler(seed=seed)
    )
    searcher = ConcurrencyLimiter(
        OptunaSearch(space=ConditionalSpace(families), metric="score", mode=mode, sampler=sampler,
                     points_to_evaluate=points_to_evaluate or None),
        max_concurrent=concurrency,
    )
    trainable = tune.with_resources(
        tune.with_parameters(
            _trainable, data=data, families=families, seed=seed, metric=metric, threads=max(1, int(cpus_per_trial)),
            task=task,
        ),
        {"cpu": cpus_per_trial},
    )
    storage_path = os.path.abspath(storage_path)
    os.makedirs(storage_path, exist_ok=True)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=num_samples,
            reuse_actors=True,
            time_budget_s=time_budget_s,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            verbose=1,
        ),
    )
    logger.info("tuning %d trial(s) over %s, %d at a time (%s)", num_samples, sorted(families), concurrency, algorithm)
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    trials = []
    for result in grid:
        if not result.config:  # stopped by time_budget_s before it was even configured
            trials.append(TrialResult(os.path.basename(result.path or ""), "unknown", {}, {}, "stopped",
                                      "stopped before its first report"))
            continue
        family, params = trial_params(result.config, families)
        metrics = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, (int, float)) and k in _KEEP}
        ok = result.error is None and "score" in metrics
        trial_id = str((result.metrics or {}).get("trial_id") or os.path.basename(result.path or ""))
        trials.append(TrialResult(trial_id, family, params, metrics, "ok" if ok else "failed",
                                  None if ok else repr(result.error)))
    good = [t for t in trials if t.status == "ok" and not math.isnan(t.score)]
    if not good:
        errors = "; ".join(t.error or "no score" for t in trials[:3])
        raise MlautoError(f"all {len(trials)} trial(s) failed: {errors}")
    best = (max if mode == "max" else min)(good, key=lambda t: t.score)
    failed = len(trials) - len(good)
    logger.info("search done in %.1fs: %d ok, %d failed; best %s %s=%.4f", wall, len(good), failed,
                best.family, metric, best.score)
    return SearchResult(trials, best, metric, mode, storage_path, wall)


_KEEP = {"score", "train_seconds", "infer_ms_per_row", "n_train", "val_accuracy", "val_f1", "val_roc_auc",
         "val_log_loss", "val_rmse", "val_mae", "val_r2", "time_total_s"}
