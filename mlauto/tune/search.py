"""One Ray Tune search over every chosen model family, with a conditional Optuna space."""

from __future__ import annotations

import inspect
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import ray
from ray import tune
from ray.tune.execution.placement_groups import PlacementGroupFactory
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
from sklearn.pipeline import Pipeline

from mlauto import storage
from mlauto.config.schema import DEFAULT_TRIALS, SchedulerConf, SchedulerName, SearchAlgorithm, SearchConf, TuneConf
from mlauto.errors import MlautoError
from mlauto.models import build_estimator, epoch_history
from mlauto.models.families import FAMILIES
from mlauto.tune.cv import cross_validate
from mlauto.tune.metrics import evaluate
from mlauto.tune.progress import SearchProgress
from mlauto.tune.space import ConditionalSpace, PerFamilyBayesOpt, grid_configs

__all__ = ["ConditionalSpace", "SearchResult", "SearchRun", "TrialResult", "run_search",
           "search_run_name", "trial_params", "warm_start_point"]

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
    progress: dict[str, Any] = field(default_factory=dict)  # SearchProgress.counts() at the end
    name: str = ""  # the Tune experiment under storage_path
    resumed: bool = False

    def leaderboard(self) -> pd.DataFrame:
        rows = [
            {"trial_id": t.trial_id, "family": t.family, "status": t.status, "score": t.score,
             **({"score_std": t.metrics["score_std"], "folds": t.metrics.get("folds")} if "score_std" in t.metrics
                else {}),
             "train_seconds": t.metrics.get("train_seconds", math.nan), **{f"param_{k}": v for k, v in t.params.items()}}
            for t in self.trials
        ]
        frame = pd.DataFrame(rows)
        return frame.sort_values("score", ascending=self.mode == "min", na_position="last").reset_index(drop=True)


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


GRID_KEY = "grid_point"  # search=grid: Tune's config is {GRID_KEY: one flat config}


def _flat(config: dict[str, Any] | None) -> dict[str, Any]:
    """The flat trial config, whichever algorithm made it."""
    config = dict(config or {})
    return dict(config[GRID_KEY]) if GRID_KEY in config else config


def _final_step(est: Any) -> Any:
    """The model itself: the last step of a Pipeline (scaler in front), or the estimator."""
    return est.steps[-1][1] if isinstance(est, Pipeline) else est


def is_iterative(est: Any) -> bool:
    """Whether the model trains in epochs and takes ``fit(..., on_epoch=...)`` (the PyTorch MLP does)."""
    return "on_epoch" in inspect.signature(_final_step(est).fit).parameters


def _report(model: Any, X_va: np.ndarray, y_va: np.ndarray, task: str, metric: str, train_seconds: float,
            n_train: int, epoch: int | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    scores = evaluate(model, X_va, y_va, task)
    infer_ms = (time.perf_counter() - start) * 1000.0 / max(1, len(y_va))
    out = {
        **{f"val_{k}": v for k, v in scores.items()},
        "score": scores[metric],
        "train_seconds": train_seconds,
        "infer_ms_per_row": infer_ms,
        "n_train": n_train,
    }
    if epoch is not None:
        out["epoch"] = epoch  # epochs (MLP) or boosting rounds kept
    return out


def _epoch_reporter(est: Any, X_va: np.ndarray, y_va: np.ndarray, task: str, metric: str, start: float,
                    n_train: int) -> dict[str, Any]:
    """fit kwargs that report every epoch to Tune, so a scheduler (ASHA) can stop a poor trial early.

    Each epoch's report has the final report's keys: a trial stopped at any epoch is complete.
    """
    pipeline = isinstance(est, Pipeline)
    cache: dict[str, np.ndarray] = {}

    def on_epoch(epoch: int, model: Any) -> bool:
        if "X" not in cache:  # the scaler in front is fitted before the model's first epoch
            cache["X"] = est[:-1].transform(X_va) if pipeline else X_va
        report = _report(model, cache["X"], y_va, task, metric, time.perf_counter() - start, n_train, epoch)
        tune.report({**report, "fidelity": epoch})  # ASHA's clock: epochs, or a booster's rung units
        return False  # Tune ends a stopped trial itself

    return {f"{est.steps[-1][0]}__on_epoch" if pipeline else "on_epoch": on_epoch}


def _set_threads(family: Any, threads: int) -> None:
    """torch's thread count for a torch family; any other trial never imports torch (seconds of start-up)."""
    if getattr(family, "accelerated", False) or "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)


def _accepts(est: Any, arg: str) -> bool:
    return arg in inspect.signature(_final_step(est).fit).parameters


def _trainable(config: dict[str, Any], data: tuple, families: dict, seed: int, metric: str, threads: int,
               task: str = "binary", rungs: tuple[int, ...] = ()) -> None:
    """One trial. ``rungs`` (a scheduler's milestones, empty under fifo): an iterative model reports at
    them (the MLP every epoch, a booster only at these units) so the scheduler can stop it early.
    A model whose fit takes ``validation`` (LightGBM) early-stops on the trial's validation split."""
    family, params = trial_params(_flat(config), families)
    _set_threads(families[family].get("family"), threads)
    tune.report(score_config(families[family].get("family", family), params, data, seed, metric, task, rungs))


def score_config(cls: Any, params: dict[str, Any], data: tuple, seed: int, metric: str, task: str,
                 rungs: tuple[int, ...] = ()) -> dict[str, Any]:
    """A config's final report: fitted and scored on the holdout, or by k-fold CV (``data`` of 3)."""
    if len(data) == 3:  # (X, y, folds): k-fold CV on training + validation rows (tune.cv_folds)
        return (cross_validate(
            lambda: build_estimator(cls, params, seed, task), data,
            lambda model, X_va, y_va: _report(model, X_va, y_va, task, metric, 0.0, 0),
            lambda model, X_va, y_va: {"validation": (X_va, y_va)} if _accepts(model, "validation")
            and not isinstance(model, Pipeline) else {}))
    X_tr, y_tr, X_va, y_va = data
    est = build_estimator(cls, params, seed, task)
    start = time.perf_counter()
    iterative = is_iterative(est)
    fit_kwargs = _epoch_reporter(est, X_va, y_va, task, metric, start, len(y_tr)) if rungs and iterative else {}
    if "rungs" in est.get_params():
        est.set_params(rungs=tuple(rungs))
    if _accepts(est, "validation") and not isinstance(est, Pipeline):
        fit_kwargs["validation"] = (X_va, y_va)
    est.fit(X_tr, y_tr, **fit_kwargs)
    train_seconds = time.perf_counter() - start
    epochs = getattr(_final_step(est), "n_epochs_", getattr(_final_step(est), "n_rounds_", None)) if iterative else None
    final = _report(est, X_va, y_va, task, metric, train_seconds, len(y_tr), epochs)
    if history := epoch_history(est):  # the MLP's history_: tracking logs it as steps; TrialResult leaves it out
        final["history"] = history
    return final


def asha_rungs(conf: SchedulerConf) -> tuple[int, ...]:
    """ASHA's milestones in its time units: grace_period * reduction_factor**k below max_t."""
    if conf.name != "asha":
        return ()
    rungs, t = [], float(conf.grace_period)
    while t < conf.max_t:
        rungs.append(int(round(t)))
        t *= float(conf.reduction_factor)
    return tuple(rungs)


class TrialResources:
    """Per-trial resources: CPUs for all, plus ``gpus`` for families that can use one (the MLP).

    A class, not a lambda: Tune pickles it into the experiment state.
    """

    def __init__(self, cpus: float, gpus: float, gpu_families: frozenset[str]) -> None:
        self.cpus, self.gpus, self.gpu_families = cpus, gpus, gpu_families

    def __call__(self, config: dict[str, Any]) -> PlacementGroupFactory:
        bundle = {"CPU": self.cpus}
        if self.gpus > 0 and _flat(config).get("family") in self.gpu_families:
            bundle["GPU"] = self.gpus
        return PlacementGroupFactory([bundle])


def gpu_families(families: dict[str, dict[str, Any]]) -> frozenset[str]:
    """Families whose models train on a GPU when one is there (PyTorch ones)."""
    return frozenset(f for f in families if getattr(FAMILIES.get(f), "accelerated", False))


def effective_gpus(gpus_per_trial: float) -> float:
    """``gpus_per_trial``, or 0 with one warning when the Ray cluster has no GPU (trials run on CPU)."""
    if gpus_per_trial <= 0:
        return 0.0
    available = ray.cluster_resources().get("GPU", 0.0)
    if available <= 0:
        logger.warning("tune.gpus_per_trial=%s but the Ray cluster has no GPU: trials run on CPU", gpus_per_trial)
        return 0.0
    return float(gpus_per_trial)


def search_run_name(name: str, *, resume: bool, run_name: str | None = None, fingerprint: str = "",
                    seed: int = 0) -> str:
    """The Tune experiment name under ``storage_path``.

    Without resume: timestamped, so every run is new. With resume: stable, so rerunning the same command
    (same name, run name, data and seed) finds and resumes the same experiment; new data or a new seed
    (a retrain) start a fresh one.
    """
    if not resume:
        return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    parts = [name, run_name or "search", fingerprint[:12], f"s{seed}"]
    return "-".join(p for p in parts if p)


def make_scheduler(conf: SchedulerConf, mode: str) -> Any:
    """fifo: run every trial to the end; asha: stop trials whose reported score trails at a rung.

    ASHA's clock is ``fidelity``, sent only with mid-training reports: epochs for the MLP, units of
    n_estimators/100 rounds for a booster (which reports only at the rungs, :func:`asha_rungs`).
    Families that report once send none and run to their end, so an MLP's early epochs are compared
    with other iterative trials' early epochs, not with finished models.
    """
    if conf.name == "fifo":
        return None
    if conf.name == "asha":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(time_attr="fidelity", metric="score", mode=mode,
                             max_t=int(conf.max_t), grace_period=int(conf.grace_period),
                             reduction_factor=float(conf.reduction_factor))
    raise MlautoError(f"unknown scheduler {conf.name!r}; valid: {', '.join(SchedulerName.values())}")


@dataclass(frozen=True)
class SearchRun:
    """What one search needs beyond its config sections: where it is stored, what it optimizes, its seed,
    and configs to evaluate first (e.g. the champion's, see :func:`warm_start_point`)."""

    name: str
    storage_path: str
    metric: str
    mode: str  # max or min: the metric's direction
    seed: int
    points_to_evaluate: list[dict[str, Any]] | None = None
    stop: Any = None  # a Tune Stopper besides the time budget (tune.budget_s: mlauto.tune.budget.BudgetStopper)


def _searcher(conf: SearchConf, families: dict, run: SearchRun, num_samples: int, concurrency: int
              ) -> tuple[Any, int, dict[str, Any] | None]:
    """The search algorithm, the number of trials it runs, and Tune's param_space (grid only)."""
    algorithm, mode, seed, points = conf.algorithm, run.mode, run.seed, run.points_to_evaluate
    if algorithm in ("optuna", "random"):
        import optuna  # here, not at import: trial actors import this module and need no optuna
        from ray.tune.search.optuna import OptunaSearch

        sampler = optuna.samplers.TPESampler(seed=seed) if algorithm == "optuna" else \
            optuna.samplers.RandomSampler(seed=seed)
        searcher = OptunaSearch(space=ConditionalSpace(families), metric="score", mode=mode, sampler=sampler,
                                points_to_evaluate=points or None)
        return ConcurrencyLimiter(searcher, max_concurrent=concurrency), num_samples, None
    if algorithm == "grid":
        # One tune.grid_search over the flat configs of every family (a conditional space is not a product).
        # Tune's num_samples repeats a grid; it is 1: the grid, not tune.num_samples, sets the trial count
        # (repeating a seeded point would only re-measure the same number).
        configs = (points or []) + grid_configs(families, conf.grid_points_per_param, conf.max_grid_size)
        if num_samples != len(configs):
            logger.info("search=grid runs each of its %d point(s) once; tune.num_samples=%d is not used",
                        len(configs), num_samples)
        return (BasicVariantGenerator(max_concurrent=concurrency), 1,
                {GRID_KEY: tune.grid_search(configs)})
    if algorithm == "bayesopt":
        if points:
            logger.info("search=bayesopt does not take warm-start points; starting from its own random steps")
        # no trial cap (a time budget alone): a quota per family the budget will cut short
        searcher = PerFamilyBayesOpt(families, num_samples if num_samples > 0 else 10_000, metric="score", mode=mode,
                                     seed=seed)
        return ConcurrencyLimiter(searcher, max_concurrent=concurrency), num_samples, None
    raise MlautoError(f"unknown search algorithm {algorithm!r}; valid: {', '.join(SearchAlgorithm.values())}")


def trial_cap(conf: TuneConf) -> int:
    """Trials the search may start: ``tune.num_samples``; when that is null, -1 (Tune: no cap, the time
    budget ends the search) with ``tune.time_budget_s`` set, else :data:`DEFAULT_TRIALS`."""
    if conf.num_samples is not None:
        return int(conf.num_samples)
    return -1 if conf.time_budget_s else DEFAULT_TRIALS


def run_search(
    data: tuple,
    task: str,
    tune_conf: TuneConf,
    search_conf: SearchConf,
    scheduler_conf: SchedulerConf,
    families: dict[str, dict[str, Any]],
    run: SearchRun,
) -> SearchResult:
    """Run the search; trials get the data from the object store, placed there once.

    ``data``: (X_train, y_train, X_val, y_val) for a holdout, or (X, y, folds) for k-fold CV
    (:func:`mlauto.tune.cv.cv_data`).

    ``run.points_to_evaluate`` (e.g. the champion's config, see :func:`warm_start_point`) run first.
    ``tune_conf.resume``: when ``storage_path/name`` holds an experiment, continue it (finished trials are
    kept, unfinished and errored ones rerun) instead of starting over; see :func:`search_run_name`.
    """
    t, metric, mode, seed, name = tune_conf, run.metric, run.mode, run.seed, run.name
    if not families:
        raise MlautoError("no model families to search; select some, e.g. models=all")
    cpus = ray.available_resources().get("CPU", 1.0) or 1.0
    concurrency = t.max_concurrent or max(1, int(cpus // t.cpus_per_trial))
    searcher, samples, param_space = _searcher(search_conf, families, run, trial_cap(t), concurrency)
    total = len(param_space[GRID_KEY]["grid_search"]) if param_space else samples
    sched = make_scheduler(scheduler_conf, mode)
    gpus = effective_gpus(t.gpus_per_trial)
    trainable = tune.with_resources(
        tune.with_parameters(
            _trainable, data=data, families=families, seed=seed, metric=metric, threads=max(1, int(t.cpus_per_trial)),
            task=task, rungs=asha_rungs(scheduler_conf),
        ),
        TrialResources(t.cpus_per_trial, gpus, gpu_families(families)),
    )
    storage_path = storage.normalize(run.storage_path)  # absolute, or an object-store URI Tune writes through pyarrow
    storage.makedirs(storage_path)
    path = storage.join(storage_path, name)
    progress = SearchProgress(total, mode=mode, interval_s=t.progress_interval_s, label=metric)
    if t.resume:
        # Tune saves its experiment state every ~10 s or more ("auto"); what finished since is rerun after
        # a crash. Save at most every 2 s unless the user set the period.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    resumed = t.resume and tune.Tuner.can_restore(path)
    if resumed:
        logger.info("resuming search %s: finished trials are kept", path)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
        progress = _restored_progress(tuner) or progress
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=sched,
                num_samples=samples,
                reuse_actors=True,
                time_budget_s=t.time_budget_s,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage_path,
                failure_config=tune.FailureConfig(max_failures=t.max_failures),
                stop=run.stop,
                callbacks=[progress],
                verbose=0,  # SearchProgress logs plain lines; Tune's table redraws and floods CI logs
            ),
        )
    logger.info("tuning %s over %s, %d at a time (%s, scheduler %s%s)",
                f"{total} trial(s)" if total > 0 else f"until the {t.time_budget_s:g}s budget", sorted(families),
                concurrency, search_conf.algorithm, scheduler_conf.name,
                f", {gpus:g} GPU per MLP trial" if gpus else "")
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    trials = []
    for result in grid:
        config = _flat(result.config)
        if not config:  # stopped by time_budget_s before it was even configured
            trials.append(TrialResult(os.path.basename(result.path or ""), "unknown", {}, {}, "stopped",
                                      "stopped before its first report"))
            continue
        family, params = trial_params(config, families)
        metrics = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, (int, float)) and k in _KEEP}
        trial_id = str((result.metrics or {}).get("trial_id") or os.path.basename(result.path or ""))
        if result.error is None and "score" not in metrics:  # the time budget ended it before its first report
            trials.append(TrialResult(trial_id, family, params, metrics, "stopped", "stopped by the time budget"))
            continue
        ok = result.error is None
        trials.append(TrialResult(trial_id, family, params, metrics, "ok" if ok else "failed",
                                  None if ok else repr(result.error)))
    good = [t for t in trials if t.status == "ok" and not math.isnan(t.score)]
    if not good and trials and all(t.status == "stopped" for t in trials):
        # the budget ended before any trial reported (trial actors start slowly on a loaded machine):
        # one config scored here, so the run still ends with a model
        fallback = _fallback_trial(data, task, families, run)
        trials.append(fallback)
        good = [fallback]
    if not good:
        errors = "; ".join(t.error or "no score" for t in trials[:3])
        raise MlautoError(f"all {len(trials)} trial(s) failed: {errors}")
    best = (max if mode == "max" else min)(good, key=lambda t: t.score)
    failed = sum(t.status == "failed" for t in trials)
    stopped = sum(t.status == "stopped" for t in trials)
    logger.info("search done in %.1fs: %d ok, %d failed, %d stopped by the budget; first result after %s; "
                "best %s %s=%.4f", wall, len(good), failed, stopped, progress.first_result_text(), best.family,
                metric, best.score)
    return SearchResult(trials, best, metric, mode, storage_path, wall, progress=progress.counts(),
                        name=name, resumed=resumed)


FALLBACK_ORDER = ("lightgbm", "hist_gb", "logreg")  # quick and sound with their fixed params alone


def _fallback_trial(data: tuple, task: str, families: dict[str, dict[str, Any]], run: SearchRun) -> TrialResult:
    """A warm-start point, or a quick family's fixed params with its library defaults, scored in the driver."""
    point = (run.points_to_evaluate or [None])[0]
    if point:
        family, params = trial_params(point, families)
    else:
        family = next((f for f in FALLBACK_ORDER if f in families), sorted(families)[0])
        params = dict(families[family].get("fixed", {}))
    logger.warning("the time budget ended before any trial reported; scoring %s %s in the driver", family, params)
    report = score_config(families[family].get("family", family), params, data, run.seed, run.metric, task)
    metrics = {k: float(v) for k, v in report.items() if isinstance(v, (int, float)) and k in _KEEP}
    return TrialResult("fallback", family, params, metrics, "ok")


def _restored_progress(tuner: tune.Tuner) -> SearchProgress | None:
    """The progress callback as restored with the experiment (its counts carry over)."""
    try:
        callbacks = tuner._local_tuner.get_run_config().callbacks or []
    except AttributeError:
        return None
    return next((c for c in callbacks if isinstance(c, SearchProgress)), None)


_KEEP = {"score", "score_std", "folds", "train_seconds", "infer_ms_per_row", "n_train", "val_accuracy", "val_f1", "val_roc_auc",
         "val_log_loss", "val_rmse", "val_mae", "val_r2", "time_total_s", "epoch"}
