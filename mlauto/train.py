"""Training: ingest -> prepare -> tune -> register, for the first run and for every retrain.

A stage takes the artifact of the stage before and returns its own; :func:`train` returns them all
as :class:`Trained`, and :func:`training_summary` is what ``summary.json`` says about them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from mlauto import console
from mlauto import storage
from mlauto.config import Config
from mlauto.config.schema import TuneConf, plain
from mlauto.context import Paths, data_source, model_name, stage, tracking_uri
from mlauto.data import PrepareDirs, Snapshot, Splits, ingest, prepare_snapshot
from mlauto.features import Preprocessor, write_report
from mlauto.models import plan_families
from mlauto.registry import import_plugins
from mlauto.tasks import detect_task, metric_for_task, metric_mode
from mlauto.track import TrackedModel, TrackTarget, TrainingRecord, track_experiment
from mlauto.tune import FinalModel, SearchResult, SearchRun, caruana, fit_final, run_search, warm_start_point
from mlauto.tune.budget import FIXED_AFTER_S, BudgetStopper, fits_after, member_fits, search_seconds
from mlauto.tune.curves import Curves, sample_size_runs
from mlauto.tune.cv import cv_data, use_cv
from mlauto.tune.portfolio import load_portfolio
from mlauto.tune.search import search_run_name
from mlauto.tune.space import portfolio_points
from mlauto.tune.select import (
    EnsembleDecision,
    choose_ensemble,
    ensemble_final,
    family_leaderboard,
    save_selection,
    top_trials,
)

logger = logging.getLogger(__name__)

REFERENCE_ROWS = 5000

# Extra training rows for a retrain: the snapshot -> (the file to clean and split, its fingerprint).
AddRows = Callable[[Snapshot], "tuple[str, str]"]


@dataclass
class Trained:
    snapshot: Snapshot
    splits: Splits
    search: SearchResult
    final: FinalModel
    tracked: TrackedModel | None  # None only while the report is written, before registering
    family_board: pd.DataFrame | None = None  # best trial per family
    ensemble: EnsembleDecision | None = None
    curves: Curves | None = None  # sample-size runs
    report: str | None = None  # the experiment's HTML report
    task: str = "binary"  # binary, multiclass or regression: tune.task, or read from the target


def resolve_task(task: str, y: Any) -> str:
    """``tune.task``, or (``auto``) the task read from the training target."""
    return task if task != "auto" else detect_task(y)



def start_points(families: dict[str, dict[str, Any]], warm_start: tuple[str, dict[str, Any]] | None,
                 portfolio: int, source: str | None = None) -> list[dict[str, Any]] | None:
    """Configs the search evaluates first: the warm start (a retrain's champion), then up to ``portfolio``
    known-good configs (:func:`mlauto.tune.space.portfolio_points`: ``source``'s learned ones first)."""
    points = [p] if warm_start and (p := warm_start_point(families, *warm_start)) else []
    if portfolio:
        points += portfolio_points(families, portfolio, load_portfolio(source))
    return points or None


def run_budget(t: TuneConf, started: float, mode: str, folds: int = 1) -> tuple[TuneConf, BudgetStopper | None]:
    """With ``tune.budget_s`` (the whole run, from ``started``): the search's time budget is what is left
    after ingest and prepare and the work after the search, and a stopper that keeps room for the best
    config's refits and the ensemble's fits (``folds``: the trials' CV folds, 1 on a holdout). Without it:
    ``t`` as it is."""
    if not t.budget_s:
        return t, None
    search_s = search_seconds(t.budget_s, time.time() - started, t.time_budget_s)
    method = str(t.ensemble.method)
    fits = fits_after(str(t.refit), list(t.sample_sizes.fractions), t.sample_sizes.top_k,
                      t.ensemble.k if method in ("soft_vote", "stacking") else 0)
    members = t.ensemble.k if method == "caruana" else 0
    logger.info("tune.budget_s=%g: %.1fs used before the search, which gets %.1fs (less the best config's "
                "%.4g fits and %d ensemble candidates' fits after it)", t.budget_s, time.time() - started, search_s,
                fits, members)
    stopper = BudgetStopper(started + t.budget_s - FIXED_AFTER_S, fits, mode,
                            per_member=member_fits(str(t.refit), folds), members=members)
    return dataclasses.replace(t, time_budget_s=search_s), stopper


def ingest_stage(cfg: Config, timings: dict[str, float]) -> Snapshot:
    with stage("ingest", timings):
        return ingest(data_source(cfg), Paths(cfg.root).snapshots, keep=cfg.ingest.keep_snapshots)



def prepare_stage(cfg: Config, snapshot: Snapshot, timings: dict[str, float],
                  add_rows: AddRows | None = None) -> tuple[Splits, Preprocessor, np.ndarray]:
    """``add_rows`` (a retrain's labelled production rows, see :mod:`mlauto.retrain`) joins rows to the
    snapshot before the split."""
    with stage("prepare", timings):
        p = cfg.prepare
        paths = Paths(cfg.root)
        path, fingerprint = snapshot.path, snapshot.fingerprint
        if add_rows is not None:
            path, fingerprint = add_rows(snapshot)
        # A regression target has no classes to stratify on, whatever prepare.stratify says.
        conf = dataclasses.replace(p, stratify=p.stratify and cfg.tune.task != "regression")
        dirs = PrepareDirs(paths.quarantine, paths.clean, paths.profiles,
                           storage.join(paths.profiles, f"schema-{cfg.name}.json"))
        splits = prepare_snapshot(path, cfg.data.target, conf, cfg.seed, fingerprint=fingerprint, dirs=dirs)
        # What was trained on, for lineage: the snapshot, or the snapshot plus production rows (a retrain).
        splits.quality.update(data_path=path, data_fingerprint=fingerprint)
        prep = Preprocessor(p.numeric_impute, p.max_categories, cfg.features.steps, cfg.features.selection)
        # The training matrix as the models must see it: target encodings cross-fitted
        # (prep.transform(train) would hand every trial the leaky full-fit encodings).
        X_train = prep.fit_transform(splits.train[splits.features], splits.train[splits.target])
        logger.info("rows: %s; %d features after preprocessing", splits.counts(), len(prep.feature_names_out_))
        return splits, prep, X_train


def train(cfg: Config, timings: dict[str, float], extra_tags: dict[str, str] | None = None,
          search_seed: int | None = None, warm_start: tuple[str, dict[str, Any]] | None = None,
          add_rows: AddRows | None = None) -> Trained:
    """ingest -> prepare -> tune -> track: a new registered version, without an alias yet.

    ``cfg.seed`` fixes the split; ``search_seed`` (default: the same) drives the search and the models,
    so a retrain can explore new configs while champion and challenger share one test split.
    ``warm_start`` (family, params) is evaluated first, so a challenger starts from the champion's config.
    ``add_rows`` adds rows (a retrain's labelled production rows) to the snapshot before the split.
    """
    import_plugins(cfg.plugins)  # a retrain runs in a Ray task, where the launcher's imports are not
    console.install()  # there too: the console the task's output reaches stays quiet
    seed = cfg.seed if search_seed is None else search_seed
    started = time.time()  # tune.budget_s counts from here: ingest to registered model
    paths = Paths(cfg.root)
    snapshot = ingest_stage(cfg, timings)
    splits, prep, X_train = prepare_stage(cfg, snapshot, timings, add_rows)
    features, target = splits.features, splits.target
    data = (X_train, splits.train[target].to_numpy(), prep.transform(splits.val[features]),
            splits.val[target].to_numpy())
    task = resolve_task(cfg.tune.task, data[1])
    metric = metric_for_task(cfg.tune.metric, task)  # "auto" and the mismatch check need the task
    logger.info("task %s%s, metric %s (%s is better)", task, " (read from the target)" if cfg.tune.task == "auto"
                else "", metric, "higher" if metric_mode(metric) == "max" else "lower")
    with stage("tune", timings):
        families = plan_families(
            {name: {"space": dict(f.space), "fixed": dict(f.fixed)} for name, f in cfg.families.items()},
            task, n_rows=len(X_train), n_features=int(X_train.shape[1]), categorical=prep.category_codes_)
        n_rows = len(data[1]) + len(data[3])
        cv = use_cv(n_rows, cfg.tune.cv_folds, cfg.tune.cv_max_rows)
        t, stopper = run_budget(cfg.tune, started, metric_mode(metric), cfg.tune.cv_folds if cv else 1)
        run = SearchRun(
            name=search_run_name(cfg.name, resume=t.resume, run_name=t.run_name, fingerprint=snapshot.fingerprint,
                                 seed=seed),
            storage_path=paths.ray_results, metric=metric, mode=metric_mode(metric), seed=seed,
            points_to_evaluate=start_points(families, warm_start, t.portfolio, t.portfolio_source), stop=stopper)
        if cv:
            logger.info("%d training + validation rows <= tune.cv_max_rows=%d: trials score by %d-fold CV",
                        n_rows, t.cv_max_rows, t.cv_folds)
        search_data = cv_data(data, task, t.cv_folds, seed) if cv else data
        search = run_search(search_data, task, t, cfg.search, cfg.scheduler, families, run)
        final = fit_final(prep, search.best.family, search.best.params, splits, seed, X_train=X_train, task=task,
                          refit=str(t.refit))
        # Model selection: best per family, an ensemble kept only if it wins out of fold, sample-size runs.
        board = family_leaderboard(search)
        if str(t.ensemble.method) == "caruana":  # on the search's own rows: its folds, or the validation split
            ensemble, chosen = caruana.choose(caruana.candidates(search, t.ensemble.k), search_data, metric,
                                              search.mode, task, seed, t.ensemble.min_gain)
            if chosen is not None:
                final = caruana.caruana_final(prep, chosen, splits, seed, task, str(t.refit))
        else:
            ensemble = choose_ensemble(top_trials(search, t.ensemble.k), data, method=t.ensemble.method,
                                       metric=search.metric, mode=search.mode, task=task, seed=seed,
                                       min_gain=t.ensemble.min_gain)
            if ensemble.kept:
                final = ensemble_final(prep, ensemble, splits, task)
        curves = sample_size_runs(top_trials(search, t.sample_sizes.top_k), data, t.sample_sizes, search.metric,
                                  search.mode, task, seed) if t.sample_sizes.fractions else None
        selection_files = save_selection(storage.join(paths.root, "selection"), board, curves)
        logger.info("best %s: val %s=%.4f, test %s=%.4f", final.family, metric, final.val_metrics[metric],
                    metric, final.test_metrics[metric])
    trained = Trained(snapshot, splits, search, final, None, board, ensemble, curves, task=task)
    report = experiment_report(cfg, trained, seed, timings)
    with stage("track", timings):
        rng = np.random.default_rng(cfg.seed)
        served_prep = final.pipeline.named_steps["prep"]
        # The monitor compares served rows, transformed by the served preprocessor, with this reference:
        # after a refit that is a new preprocessor, so the reference is the training rows through it.
        reference = X_train if served_prep is prep else served_prep.transform(splits.train[features])
        reference = reference[rng.permutation(len(reference))[:REFERENCE_ROWS]]
        where = TrackTarget(tracking_uri(cfg), cfg.tracking.experiment or cfg.name, paths.artifacts, model_name(cfg))
        record = TrainingRecord(
            snapshot.fingerprint, seed, splits.counts(), task, reference=reference,
            sample_input=splits.train[features].head(20),
            extra_tags={"mlauto.train_fingerprint": str(splits.quality.get("data_fingerprint", snapshot.fingerprint)),
                        "mlauto.train_data": str(splits.quality.get("data_path", snapshot.path)),
                        **final.lineage(), **(extra_tags or {})})
        artifacts = {**write_report(served_prep, storage.join(paths.root, "features")),  # the served model's
                     **({"data": splits.quality["profile_path"]} if splits.quality.get("profile_path") else {}),
                     **selection_files, **({"report": report} if report else {})}
        tracked = track_experiment(where, search, final, record, _redacted(cfg), artifacts, curves)
    return dataclasses.replace(trained, tracked=tracked, report=report)


def experiment_report(cfg: Config, trained: Trained, seed: int, timings: dict[str, float]) -> str | None:
    """``<root>/reports/<name>-<time>.html``: profile, leaderboard, fronts, test errors, importance.

    The report is a by-product: one that fails is logged and the training goes on without it.
    """
    from mlauto.report import feature_importance
    from mlauto.report import ReportContent
    from mlauto.report import write_report as write_experiment_report
    splits, search, final, task = trained.splits, trained.search, trained.final, trained.task
    features, target, pipe = splits.features, splits.target, final.pipeline
    path = storage.join(Paths(cfg.root).root, "reports", f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}.html")
    try:
        with stage("report", timings):
            X_test, y_test = splits.test[features], splits.test[target].to_numpy()
            proba = pipe.predict_proba(X_test) if task != "regression" else None
            classes = np.asarray(pipe.classes_) if proba is not None else None
            y_pred = classes[np.argmax(proba, axis=1)] if proba is not None else pipe.predict(X_test)
            importance = (feature_importance(pipe, splits.val[features], splits.val[target].to_numpy(), task,
                                             search.metric, seed) if len(splits.val) else None)
            summary = {"best_family": final.family, "best_params": final.params, "val_metrics": final.val_metrics,
                       "test_metrics": final.test_metrics, "data_fingerprint": trained.snapshot.fingerprint,
                       "rows": splits.counts(),
                       "search_seconds": round(search.wall_seconds, 3),
                       "final_fit_seconds": round(final.train_seconds, 3), "stage_seconds": dict(timings)}
            return write_experiment_report(path, ReportContent(
                title=f"mlauto experiment {cfg.name}", task=task, metric=search.metric,
                leaderboard=search.leaderboard(), family_board=trained.family_board, curves=trained.curves,
                profile=splits.quality.get("profile_path"), y_true=y_test, y_pred=y_pred, proba=proba,
                classes=classes, importance=importance, summary=summary))
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning("the experiment report could not be written to %s", path, exc_info=True)
        return None


def _redacted(cfg: Config) -> dict[str, Any]:
    """The config as logged to MLflow: secrets masked."""
    config = plain(cfg)  # Enums as text: the config is logged as JSON and YAML
    if config["serve"].get("admin_token"):
        config["serve"]["admin_token"] = "***"
    return config



def training_summary(trained: Trained, cfg: Config) -> dict[str, Any]:
    return {
        "data_fingerprint": trained.snapshot.fingerprint,
        "snapshot": trained.snapshot.path,
        "rows": trained.splits.counts(),
        "quarantine": quarantine_summary(trained.splits),
        "data_quality": trained.splits.quality,
        "best_family": trained.final.family,
        "best_params": trained.final.params,
        "task": trained.task,
        "metric": trained.search.metric,  # tune.metric with "auto" resolved for the task
        "val_metrics": trained.final.val_metrics,
        "test_metrics": trained.final.test_metrics,
        # which rows the served model saw; the test score's model never saw the test rows
        "refit": {"mode": trained.final.refit, "rows_seen": trained.final.rows_seen,
                  "test_metrics_from": trained.final.test_from, "note": trained.final.refit_note,
                  "served_test_metrics_seen_rows": trained.final.served_test_metrics},
        "trials": {"total": len(trained.search.trials),
                   "ok": sum(t.status == "ok" for t in trained.search.trials),
                   "failed": sum(t.status == "failed" for t in trained.search.trials),
                   "stopped": sum(t.status == "stopped" for t in trained.search.trials)},
        "mlflow_run_id": trained.tracked.run_id,
        "model_version": trained.tracked.version,
        "family_leaderboard": trained.family_board.to_dict("records") if trained.family_board is not None else None,
        "ensemble": trained.ensemble.summary() if trained.ensemble is not None else None,
        "fastest_within": trained.curves.fastest_within if trained.curves is not None else None,
        "report": trained.report,
    }


def quarantine_summary(splits: Splits) -> dict[str, Any]:
    cleaning = splits.quality.get("cleaning", {})
    return {"rows": splits.quarantined, "reasons": splits.quarantine_reasons, "path": splits.quarantine_path,
            "rows_in": cleaning.get("rows_in"), "repaired": cleaning.get("repaired", {})}



__all__ = ["Trained", "experiment_report", "ingest_stage", "prepare_stage", "quarantine_summary", "resolve_task",
           "train", "training_summary"]
