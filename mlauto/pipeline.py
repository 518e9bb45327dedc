"""``run(cfg)``: each stage's artifact handed to the next. The retrain task calls the same code."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from mlauto.config import Config, metric_for_task, metric_mode
from mlauto.data import CleanRules, Snapshot, Source, Splits, ingest, make_source, prepare_snapshot
from mlauto.features import Preprocessor, write_report
from mlauto.models import plan_families
from mlauto.track import (
    BundleLoader,
    TrackedModel,
    promote,
    sqlite_uri,
    track_experiment,
)
from mlauto.tune import FinalModel, SearchResult, detect_task, fit_final, run_search, warm_start_point
from mlauto.tune.search import search_run_name
from mlauto.tune.curves import Curves, sample_size_runs
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


@dataclass
class Paths:
    root: str

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)

    @property
    def snapshots(self) -> str:
        return os.path.join(self.root, "snapshots")

    @property
    def quarantine(self) -> str:
        return os.path.join(self.root, "quarantine")

    @property
    def clean(self) -> str:
        return os.path.join(self.root, "clean")

    @property
    def profiles(self) -> str:
        return os.path.join(self.root, "profiles")

    @property
    def ray_results(self) -> str:
        return os.path.join(self.root, "ray_results")

    @property
    def artifacts(self) -> str:
        return os.path.join(self.root, "mlartifacts")

    def schedule(self, actor_name: str) -> str:
        return os.path.join(self.root, "schedule", actor_name)


def tracking_uri(cfg: Config) -> str:
    return cfg.tracking.uri or sqlite_uri(cfg.root)


def model_name(cfg: Config) -> str:
    return cfg.tracking.model_name or f"mlauto-{cfg.name}"


def loader_for(cfg: Config) -> BundleLoader:
    return BundleLoader(tracking_uri(cfg), model_name(cfg))


@contextlib.contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    logger.info("== stage %s", name)
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 3)
    logger.info("== stage %s done in %.1fs", name, timings[name])


@dataclass
class Trained:
    snapshot: Snapshot
    splits: Splits
    search: SearchResult
    final: FinalModel
    tracked: TrackedModel
    family_board: pd.DataFrame | None = None  # best trial per family
    ensemble: EnsembleDecision | None = None
    curves: Curves | None = None  # sample-size runs
    report: str | None = None  # the experiment's HTML report
    task: str = "binary"  # binary, multiclass or regression: tune.task, or read from the target


def resolve_task(task: str, y: Any) -> str:
    """``tune.task``, or (``auto``) the task read from the training target."""
    return task if task != "auto" else detect_task(y)


def data_source(cfg: Config) -> Source:
    """The configured source: its constructor takes the ``data.*`` keys it names."""
    options = dataclasses.asdict(cfg.data)
    return make_source(options.pop("source"), **options)


def ingest_stage(cfg: Config, timings: dict[str, float]) -> Snapshot:
    with stage("ingest", timings):
        return ingest(data_source(cfg), Paths(cfg.root).snapshots, keep=cfg.ingest.keep_snapshots)


def with_production_rows(snapshot: Snapshot, rows: pd.DataFrame, directory: str) -> tuple[str, str]:
    """The snapshot plus labelled production rows, as one Parquet file for cleaning and splitting.

    The rows come from JSON requests, so each column takes the snapshot's type where it fits; they go
    through the same cleaning (and quarantine) as the source. Returns the file and its fingerprint.
    """
    import hashlib

    base = pd.read_parquet(snapshot.path)
    rows = rows[[c for c in base.columns if c in rows.columns]].copy()
    for col in rows.columns:
        try:
            rows[col] = rows[col].astype(base[col].dtype)
        except (TypeError, ValueError):
            pass  # e.g. null in a numpy int column: pandas picks a wider type
    digest = hashlib.sha256(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()).hexdigest()
    fingerprint = f"{snapshot.fingerprint[:8]}p{digest[:7]}"
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{fingerprint}.parquet")
    pd.concat([base, rows], ignore_index=True).to_parquet(path, index=False)
    logger.info("retrain data: snapshot %s (%d rows) + %d labelled production rows -> %s", snapshot.fingerprint,
                len(base), len(rows), path)
    return path, fingerprint


def prepare_stage(cfg: Config, snapshot: Snapshot, timings: dict[str, float],
                  extra_rows: pd.DataFrame | None = None) -> tuple[Splits, Preprocessor, np.ndarray]:
    """``extra_rows`` (labelled production rows, for a retrain) join the snapshot before the split."""
    with stage("prepare", timings):
        p = cfg.prepare
        paths = Paths(cfg.root)
        path, fingerprint = snapshot.path, snapshot.fingerprint
        if extra_rows is not None and len(extra_rows):
            path, fingerprint = with_production_rows(snapshot, extra_rows, os.path.join(paths.root, "retrain"))
        splits = prepare_snapshot(
            path, cfg.data.target, fingerprint=fingerprint,
            rules=CleanRules.from_dict(p.clean), quarantine_dir=paths.quarantine, clean_dir=paths.clean,
            profile_dir=paths.profiles, schema_path=os.path.join(paths.profiles, f"schema-{cfg.name}.json"),
            schema_check=p.schema_check, profile_sample_rows=p.profile_sample_rows, test_size=p.test_size,
            val_size=p.val_size, stratify=p.stratify and cfg.tune.task != "regression", seed=cfg.seed, method=p.split, group_column=p.group_column,
            time_column=p.time_column,
        )
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
          extra_rows: pd.DataFrame | None = None) -> Trained:
    """ingest -> prepare -> tune -> track: a new registered version, without an alias yet.

    ``cfg.seed`` fixes the split; ``search_seed`` (default: the same) drives the search and the models,
    so a retrain can explore new configs while champion and challenger share one test split.
    ``warm_start`` (family, params) is evaluated first, so a challenger starts from the champion's config.
    """
    seed = cfg.seed if search_seed is None else search_seed
    paths = Paths(cfg.root)
    snapshot = ingest_stage(cfg, timings)
    splits, prep, X_train = prepare_stage(cfg, snapshot, timings, extra_rows)
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
            task, n_rows=len(X_train), n_features=int(X_train.shape[1]))
        t = cfg.tune
        search = run_search(
            data, families, metric=metric, mode=metric_mode(metric), num_samples=t.num_samples,
            algorithm=cfg.search.algorithm, seed=seed, storage_path=paths.ray_results,
            name=search_run_name(cfg.name, resume=t.resume, run_name=t.run_name, fingerprint=snapshot.fingerprint,
                                 seed=seed),
            cpus_per_trial=t.cpus_per_trial,
            max_concurrent=t.max_concurrent, time_budget_s=t.time_budget_s, max_failures=t.max_failures,
            points_to_evaluate=[p] if warm_start and (p := warm_start_point(families, *warm_start)) else None,
            task=task, scheduler=cfg.scheduler.name,
            scheduler_options={k: getattr(cfg.scheduler, k) for k in ("grace_period", "reduction_factor", "max_t")},
            grid_points_per_param=cfg.search.grid_points_per_param, max_grid_size=cfg.search.max_grid_size,
            gpus_per_trial=t.gpus_per_trial, resume=t.resume, progress_interval_s=t.progress_interval_s,
        )
        final = fit_final(prep, search.best.family, search.best.params, splits, seed, X_train=X_train, task=task)
        # Model selection: best per family, a top-k ensemble kept only if it wins on validation, sample-size runs.
        board = family_leaderboard(search)
        ensemble = choose_ensemble(top_trials(search, t.ensemble.k), data, method=t.ensemble.method,
                                   metric=search.metric, mode=search.mode, task=task, seed=seed)
        if ensemble.kept:
            final = ensemble_final(prep, ensemble, splits, task)
        curves = sample_size_runs(top_trials(search, t.sample_sizes.top_k), data, fractions=t.sample_sizes.fractions,
                                  metric=search.metric, mode=search.mode, task=task, seed=seed,
                                  tolerance=t.sample_sizes.tolerance) if t.sample_sizes.fractions else None
        selection_files = save_selection(os.path.join(paths.root, "selection"), board, curves)
        logger.info("best %s: val %s=%.4f, test %s=%.4f", final.family, metric, final.val_metrics[metric],
                    metric, final.test_metrics[metric])
    report = experiment_report(cfg, splits, search, final, seed, timings, snapshot.fingerprint,
                               family_board=board, curves=curves, task=task)
    with stage("track", timings):
        rng = np.random.default_rng(cfg.seed)
        reference = X_train[rng.permutation(len(X_train))[:REFERENCE_ROWS]]
        tracked = track_experiment(
            uri=tracking_uri(cfg), experiment=cfg.tracking.experiment or cfg.name, artifact_root=paths.artifacts,
            model_name=model_name(cfg), search=search, final=final, reference=reference,
            sample_input=splits.train[features].head(20), fingerprint=snapshot.fingerprint,
            config=_redacted(cfg), seed=seed, counts=splits.counts(), task=task,
            extra_tags={"mlauto.train_fingerprint": str(splits.quality.get("data_fingerprint", snapshot.fingerprint)),
                        "mlauto.train_data": str(splits.quality.get("data_path", snapshot.path)),
                        **(extra_tags or {})}, curves=curves,
            artifacts={**write_report(prep, os.path.join(paths.root, "features")),
                       **({"data": splits.quality["profile_path"]} if splits.quality.get("profile_path") else {}),
                       **selection_files, **({"report": report} if report else {})},
        )
    return Trained(snapshot, splits, search, final, tracked, board, ensemble, curves, report=report, task=task)


def experiment_report(cfg: Config, splits: Splits, search: SearchResult, final: FinalModel, seed: int,
                      timings: dict[str, float], fingerprint: str, *, family_board: pd.DataFrame | None = None,
                      curves: Any = None, task: str | None = None) -> str | None:
    """``<root>/reports/<name>-<time>.html``: profile, leaderboard, fronts, test errors, importance.

    The report is a by-product: one that fails is logged and the training goes on without it.
    """
    from mlauto.report import feature_importance
    from mlauto.report import write_report as write_experiment_report
    features, target, pipe = splits.features, splits.target, final.pipeline
    task = task or resolve_task(cfg.tune.task, splits.train[target])
    path = os.path.join(Paths(cfg.root).root, "reports", f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}.html")
    try:
        with stage("report", timings):
            X_test, y_test = splits.test[features], splits.test[target].to_numpy()
            proba = pipe.predict_proba(X_test) if task != "regression" else None
            classes = np.asarray(pipe.classes_) if proba is not None else None
            y_pred = classes[np.argmax(proba, axis=1)] if proba is not None else pipe.predict(X_test)
            importance = (feature_importance(pipe, splits.val[features], splits.val[target].to_numpy(), task,
                                             search.metric, seed) if len(splits.val) else None)
            summary = {"best_family": final.family, "best_params": final.params, "val_metrics": final.val_metrics,
                       "test_metrics": final.test_metrics, "data_fingerprint": fingerprint, "rows": splits.counts(),
                       "search_seconds": round(search.wall_seconds, 3),
                       "final_fit_seconds": round(final.train_seconds, 3), "stage_seconds": dict(timings)}
            return write_experiment_report(
                path, title=f"mlauto experiment {cfg.name}", task=task, metric=search.metric,
                leaderboard=search.leaderboard(), family_board=family_board, curves=curves,
                profile=splits.quality.get("profile_path"), y_true=y_test, y_pred=y_pred, proba=proba,
                classes=classes, importance=importance, summary=summary)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning("the experiment report could not be written to %s", path, exc_info=True)
        return None


def _redacted(cfg: Config) -> dict[str, Any]:
    """The config as logged to MLflow: secrets masked."""
    config = dataclasses.asdict(cfg)
    if config["serve"].get("admin_token"):
        config["serve"]["admin_token"] = "***"
    return config


def run(cfg: Config, output_dir: str) -> dict[str, Any]:
    """Run the configured stages and write ``summary.json`` to ``output_dir``."""
    from mlauto import runtime
    from mlauto.ops import retrain, serve_version, start_ingest_schedule

    start = time.perf_counter()
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"experiment": cfg.name, "stages": list(cfg.stages), "output_dir": output_dir,
                               "tracking_uri": tracking_uri(cfg), "model_name": model_name(cfg), "endpoint": None}
    if "serve" in cfg.stages and not cfg.serve.admin_token:
        # Generated once per run, so the swap after a retrain keeps it.
        cfg = dataclasses.replace(cfg, serve=dataclasses.replace(cfg.serve, admin_token=secrets.token_urlsafe(24)))
        logger.info("admin token for POST /admin/* (Authorization: Bearer ...): %s", cfg.serve.admin_token)
    owns_ray = runtime.connect(cfg.cluster.address, cfg.cluster.namespace, cfg.cluster.num_cpus,
                               env=runtime.serve_ingress_env(cfg.serve.ingress) if "serve" in cfg.stages else None)
    served = monitored = scheduled = False
    try:
        version: str | None = None
        trained = None
        if "tune" in cfg.stages:
            trained = train(cfg, timings)
            version = trained.tracked.version
            promote(tracking_uri(cfg), model_name(cfg), version)
            summary.update(_training_summary(trained, cfg))
        else:
            if "ingest" in cfg.stages or "prepare" in cfg.stages:
                snapshot = ingest_stage(cfg, timings)
                summary.update(data_fingerprint=snapshot.fingerprint, snapshot=snapshot.path)
                if "prepare" in cfg.stages:
                    splits, _, _ = prepare_stage(cfg, snapshot, timings)
                    summary["rows"] = splits.counts()
                    summary["quarantine"] = _quarantine_summary(splits)
                    summary["data_quality"] = splits.quality
            if "serve" in cfg.stages or "monitor" in cfg.stages:
                version = loader_for(cfg).resolve(None)
                summary["model_version"] = version
        if "monitor" in cfg.stages:
            with stage("monitor", timings):
                from functools import partial

                from mlauto.monitor import start_monitor

                m = cfg.monitor
                start_monitor(m.actor_name, cfg.cluster.namespace, loader_for(cfg), detector=m.detector,
                              p_val=m.p_val, window=m.window,
                              retrain_fn=partial(retrain, cfg) if m.retrain else None, cooldown_s=m.cooldown_s,
                              perf_window=m.perf_window, min_accuracy=m.min_accuracy, max_rmse=m.max_rmse,
                              state_dir=os.path.join(cfg.root, "monitor", m.actor_name) if m.persist else None,
                              target=cfg.data.target, retrain_schedule=m.retrain_schedule,
                              correction=m.correction, detector_options=dict(m.options), label_drift=m.label_drift,
                              label_shift=m.label_shift, label_ert=m.label_ert, label_warmup=m.label_warmup,
                              label_reference_rows=m.label_reference_rows)
                monitored = True
                summary["monitor"] = {"actor": m.actor_name, "namespace": cfg.cluster.namespace,
                                      "detector": m.detector, "window": m.window}
        if "serve" in cfg.stages:
            with stage("serve", timings):
                summary["endpoint"] = serve_version(cfg, None)  # follows the champion alias
                served = True
        if cfg.replay.enabled and served and "monitor" in cfg.stages and trained is not None:
            with stage("replay", timings):
                summary["replay"] = _replay(cfg, summary["endpoint"], trained)
        if cfg.ingest.schedule:
            summary["schedule"] = start_ingest_schedule(cfg)
            scheduled = True
        summary["status"] = "ok"
        summary["stage_seconds"] = timings
        summary["total_seconds"] = round(time.perf_counter() - start, 3)
        _write_summary(summary, output_dir)
        if (served or monitored) and owns_ray and cfg.serve.blocking:
            block_until_stopped(summary["endpoint"] or f"monitor actor {cfg.monitor.actor_name}")
        elif scheduled and owns_ray and cfg.serve.blocking:  # the scheduler lives in this Ray
            block_until_stopped(repr(cfg.ingest.schedule), "ingesting on schedule %s")
        return summary
    except BaseException as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}", stage_seconds=timings,
                       total_seconds=round(time.perf_counter() - start, 3))
        _write_summary(summary, output_dir)
        raise
    finally:
        if owns_ray:
            if served:
                from ray import serve

                serve.shutdown()
            import ray

            ray.shutdown()


def _training_summary(trained: Trained, cfg: Config) -> dict[str, Any]:
    return {
        "data_fingerprint": trained.snapshot.fingerprint,
        "snapshot": trained.snapshot.path,
        "rows": trained.splits.counts(),
        "quarantine": _quarantine_summary(trained.splits),
        "data_quality": trained.splits.quality,
        "best_family": trained.final.family,
        "best_params": trained.final.params,
        "task": trained.task,
        "metric": trained.search.metric,  # tune.metric with "auto" resolved for the task
        "val_metrics": trained.final.val_metrics,
        "test_metrics": trained.final.test_metrics,
        "trials": {"total": len(trained.search.trials),
                   "failed": sum(t.status != "ok" for t in trained.search.trials)},
        "mlflow_run_id": trained.tracked.run_id,
        "model_version": trained.tracked.version,
        "family_leaderboard": trained.family_board.to_dict("records") if trained.family_board is not None else None,
        "ensemble": trained.ensemble.summary() if trained.ensemble is not None else None,
        "fastest_within": trained.curves.fastest_within if trained.curves is not None else None,
        "report": trained.report,
    }


def _quarantine_summary(splits: Splits) -> dict[str, Any]:
    cleaning = splits.quality.get("cleaning", {})
    return {"rows": splits.quarantined, "reasons": splits.quarantine_reasons, "path": splits.quarantine_path,
            "rows_in": cleaning.get("rows_in"), "repaired": cleaning.get("repaired", {})}


def _replay(cfg: Config, url: str, trained: Trained) -> dict[str, Any]:
    from mlauto.monitor.replay import replay

    splits = trained.splits
    rows = splits.test.head(cfg.replay.rows)
    std = splits.train[splits.features].select_dtypes("number").std()
    return replay(url, rows[splits.features], rows[splits.target].to_numpy(), std, shift=cfg.replay.shift,
                  batch=cfg.replay.batch, timeout_s=cfg.replay.timeout_s)


def _write_summary(summary: dict[str, Any], output_dir: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "summary.json")
    with open(path, "w") as fh:
        json.dump(summary, fh, indent=2, default=str)
    logger.info("summary written to %s", path)


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def block_until_stopped(what: str,
                        message: str = "serving at %s (POST /predict, GET /model, GET /drift, GET /health)") -> None:
    """Wait for Ctrl-C or SIGTERM (docker stop). Tune leaves its own SIGINT handler behind, so set ours."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    logger.info(message + ". Ctrl-C to stop.", what)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        logger.info("stopping")


__all__ = ["Paths", "Trained", "block_until_stopped", "ingest_stage", "prepare_stage", "run", "train"]
