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

from mlauto.config import Config, metric_mode
from mlauto.data import CleanRules, Snapshot, Splits, ingest, make_source, prepare_snapshot
from mlauto.features import Preprocessor
from mlauto.track import (
    BundleLoader,
    TrackedModel,
    previous_champion,
    promote,
    sqlite_uri,
    track_experiment,
)
from mlauto.tune import FinalModel, SearchResult, classification_metrics, fit_final, run_search, warm_start_point

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


def ingest_stage(cfg: Config, timings: dict[str, float]) -> Snapshot:
    with stage("ingest", timings):
        source = make_source(cfg.data.source, name=cfg.data.name, path=cfg.data.path, format=cfg.data.format,
                             target=cfg.data.target)
        return ingest(source, Paths(cfg.root).snapshots)


def prepare_stage(cfg: Config, snapshot: Snapshot, timings: dict[str, float]) -> tuple[Splits, Preprocessor]:
    with stage("prepare", timings):
        p = cfg.prepare
        paths = Paths(cfg.root)
        splits = prepare_snapshot(
            snapshot.path, cfg.data.target, fingerprint=snapshot.fingerprint,
            rules=CleanRules.from_dict(p.clean), quarantine_dir=paths.quarantine, clean_dir=paths.clean,
            profile_dir=paths.profiles, schema_path=os.path.join(paths.profiles, f"schema-{cfg.name}.json"),
            schema_check=p.schema_check, profile_sample_rows=p.profile_sample_rows, test_size=p.test_size,
            val_size=p.val_size, stratify=p.stratify, seed=cfg.seed, method=p.split, group_column=p.group_column,
            time_column=p.time_column,
        )
        prep = Preprocessor(numeric_impute=p.numeric_impute, max_categories=p.max_categories)
        prep.fit(splits.train[splits.features])
        logger.info("rows: %s; %d features after preprocessing", splits.counts(), len(prep.feature_names_out_))
        return splits, prep


def train(cfg: Config, timings: dict[str, float], extra_tags: dict[str, str] | None = None,
          search_seed: int | None = None, warm_start: tuple[str, dict[str, Any]] | None = None) -> Trained:
    """ingest -> prepare -> tune -> track: a new registered version, without an alias yet.

    ``cfg.seed`` fixes the split; ``search_seed`` (default: the same) drives the search and the models,
    so a retrain can explore new configs while champion and challenger share one test split.
    ``warm_start`` (family, params) is evaluated first, so a challenger starts from the champion's config.
    """
    seed = cfg.seed if search_seed is None else search_seed
    paths = Paths(cfg.root)
    snapshot = ingest_stage(cfg, timings)
    splits, prep = prepare_stage(cfg, snapshot, timings)
    features, target = splits.features, splits.target
    X_train = prep.transform(splits.train[features])
    data = (X_train, splits.train[target].to_numpy(), prep.transform(splits.val[features]),
            splits.val[target].to_numpy())
    with stage("tune", timings):
        families = {name: {"space": dict(f.space), "fixed": dict(f.fixed)} for name, f in cfg.families.items()}
        t = cfg.tune
        search = run_search(
            data, families, metric=t.metric, mode=metric_mode(t.metric), num_samples=t.num_samples,
            algorithm=cfg.search.algorithm, seed=seed, storage_path=paths.ray_results,
            name=f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}", cpus_per_trial=t.cpus_per_trial,
            max_concurrent=t.max_concurrent, time_budget_s=t.time_budget_s, max_failures=t.max_failures,
            points_to_evaluate=[p] if warm_start and (p := warm_start_point(families, *warm_start)) else None,
        )
        final = fit_final(prep, search.best.family, search.best.params, splits, seed)
        logger.info("best %s: val %s=%.4f, test %s=%.4f", final.family, t.metric, final.val_metrics[t.metric],
                    t.metric, final.test_metrics[t.metric])
    with stage("track", timings):
        rng = np.random.default_rng(cfg.seed)
        reference = X_train[rng.permutation(len(X_train))[:REFERENCE_ROWS]]
        tracked = track_experiment(
            uri=tracking_uri(cfg), experiment=cfg.tracking.experiment or cfg.name, artifact_root=paths.artifacts,
            model_name=model_name(cfg), search=search, final=final, reference=reference,
            sample_input=splits.train[features].head(20), fingerprint=snapshot.fingerprint,
            config=_redacted(cfg), seed=seed, counts=splits.counts(), extra_tags=extra_tags,
            artifacts={"data": splits.quality["profile_path"]} if splits.quality.get("profile_path") else None,
        )
    return Trained(snapshot, splits, search, final, tracked)


def _redacted(cfg: Config) -> dict[str, Any]:
    """The config as logged to MLflow: secrets masked."""
    config = dataclasses.asdict(cfg)
    if config["serve"].get("admin_token"):
        config["serve"]["admin_token"] = "***"
    return config


def serve_version(cfg: Config, version: str | None) -> str:
    from mlauto.serve import deploy

    s = cfg.serve
    monitor = ({"name": cfg.monitor.actor_name, "namespace": cfg.cluster.namespace, "flush_s": s.monitor_flush_s,
                "max_buffer": s.monitor_buffer} if "monitor" in cfg.stages else None)
    return deploy(loader_for(cfg), version, app_name=s.app_name, host=s.host, port=s.port,
                  route_prefix=s.route_prefix, num_replicas=s.num_replicas, replica_cpus=s.replica_cpus,
                  monitor=monitor, max_body_bytes=s.max_body_bytes,
                  admin_token=s.admin_token, protect_predict=s.protect_predict,
                  batch={"max_size": s.batch_max_size, "wait_s": s.batch_wait_s}, poll_s=s.poll_s,
                  autoscaling=s.autoscaling)


def promote_version(cfg: Config, version: str, *, reload_monitor: bool = True) -> dict[str, Any]:
    """Make ``version`` the champion; the endpoint's replicas follow the alias in place (within
    ``serve.poll_s``), and the running monitor, if any, is reloaded now."""
    import ray
    from ray import serve

    old = promote(tracking_uri(cfg), model_name(cfg), version)
    swapped = watched = False
    if ray.is_initialized():
        swapped = cfg.serve.app_name in serve.status().applications
        if reload_monitor:
            try:
                actor = ray.get_actor(cfg.monitor.actor_name, namespace=cfg.cluster.namespace)
            except ValueError:
                actor = None
            if actor is not None:
                ray.get(actor.reload.remote(version))
                watched = True
    logger.info("champion of %s: version %s -> %s (endpoint follows within %ss: %s, monitor reloaded: %s)",
                model_name(cfg), old, version, cfg.serve.poll_s, swapped, watched)
    return {"model_name": model_name(cfg), "previous": old, "champion": str(version), "endpoint_swapped": swapped,
            "monitor_reloaded": watched}


def rollback(cfg: Config) -> dict[str, Any]:
    """Restore the champion before the last promotion."""
    return promote_version(cfg, previous_champion(tracking_uri(cfg), model_name(cfg)))


def champion_config(cfg: Config, run_id: str) -> Config:
    """How the champion was trained (its logged config), with this run's storage, serving and monitoring."""
    import mlflow

    from mlauto.config import config_from_dict

    mlflow.set_tracking_uri(tracking_uri(cfg))
    logged = config_from_dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json"))
    return dataclasses.replace(logged, root=cfg.root, stages=list(cfg.stages), tracking=cfg.tracking,
                               serve=cfg.serve, monitor=cfg.monitor, replay=cfg.replay, cluster=cfg.cluster)


def retrain(cfg: Config, reason: str) -> dict[str, Any]:
    """Run by the monitor as a Ray task: train a challenger on a small budget; promote it if it is better.

    The challenger is trained the way the champion was (its logged data, prepare, families and
    search settings) with a new search seed, on a fresh ingest of the source. Both are scored on the
    same held-out test split (same split seed). A failure raises, and the live model keeps serving.
    """
    from mlflow.tracking import MlflowClient

    champion = BundleLoader(tracking_uri(cfg), model_name(cfg), with_reference=False)()
    base = champion_config(cfg, champion.run_id)
    small = dataclasses.replace(base, tune=dataclasses.replace(base.tune, num_samples=cfg.monitor.retrain_num_samples))
    client = MlflowClient(tracking_uri(cfg))
    n_versions = len(client.search_model_versions(f"name = '{model_name(cfg)}'"))
    trained = train(small, {}, extra_tags={"mlauto.trigger": reason, "mlauto.champion_version": champion.version},
                    search_seed=base.seed + n_versions,
                    warm_start=(champion.meta["family"], champion.meta["params"]))
    metric, mode = base.tune.metric, metric_mode(base.tune.metric)
    test = trained.splits.test
    champion_score = classification_metrics(champion.pipeline, test[trained.splits.features],
                                            test[trained.splits.target].to_numpy())[metric]
    challenger_score = trained.final.test_metrics[metric]
    margin = cfg.monitor.promote_margin
    better = challenger_score >= champion_score + margin if mode == "max" else challenger_score <= champion_score - margin
    version = trained.tracked.version
    evidence = {"mlauto.decision": "promoted" if better else "rejected", "mlauto.trigger": reason,
                "mlauto.champion_version": champion.version, f"mlauto.challenger_test_{metric}": challenger_score,
                f"mlauto.champion_test_{metric}": champion_score, "mlauto.promote_margin": margin}
    for key, value in evidence.items():
        client.set_model_version_tag(model_name(cfg), version, key, str(value))
    if better:  # the monitor reloads itself when it reads this result
        promote_version(cfg, version, reload_monitor=False)
    return {"model_name": model_name(cfg), "version": version, "promoted": bool(better), "metric": metric,
            "challenger_score": challenger_score, "champion_score": champion_score,
            "champion_version": champion.version, "reason": reason, "run_id": trained.tracked.run_id}


def run(cfg: Config, output_dir: str) -> dict[str, Any]:
    """Run the configured stages and write ``summary.json`` to ``output_dir``."""
    from mlauto import runtime

    start = time.perf_counter()
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"experiment": cfg.name, "stages": list(cfg.stages), "output_dir": output_dir,
                               "tracking_uri": tracking_uri(cfg), "model_name": model_name(cfg), "endpoint": None}
    if "serve" in cfg.stages and not cfg.serve.admin_token:
        # Generated once per run, so the swap after a retrain keeps it.
        cfg = dataclasses.replace(cfg, serve=dataclasses.replace(cfg.serve, admin_token=secrets.token_urlsafe(24)))
        logger.info("admin token for POST /admin/* (Authorization: Bearer ...): %s", cfg.serve.admin_token)
    owns_ray = runtime.connect(cfg.cluster.address, cfg.cluster.namespace, cfg.cluster.num_cpus)
    served = monitored = False
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
                    splits, _ = prepare_stage(cfg, snapshot, timings)
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
                              perf_window=m.perf_window, min_accuracy=m.min_accuracy,
                              state_dir=os.path.join(cfg.root, "monitor", m.actor_name) if m.persist else None)
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
        summary["status"] = "ok"
        summary["stage_seconds"] = timings
        summary["total_seconds"] = round(time.perf_counter() - start, 3)
        _write_summary(summary, output_dir)
        if (served or monitored) and owns_ray and cfg.serve.blocking:
            _block(summary["endpoint"] or f"monitor actor {cfg.monitor.actor_name}")
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
        "metric": cfg.tune.metric,
        "val_metrics": trained.final.val_metrics,
        "test_metrics": trained.final.test_metrics,
        "trials": {"total": len(trained.search.trials),
                   "failed": sum(t.status != "ok" for t in trained.search.trials)},
        "mlflow_run_id": trained.tracked.run_id,
        "model_version": trained.tracked.version,
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


def _block(what: str) -> None:
    """Wait for Ctrl-C or SIGTERM (docker stop). Tune leaves its own SIGINT handler behind, so set ours."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    logger.info("serving at %s (POST /predict, GET /model, GET /drift, GET /health). Ctrl-C to stop.", what)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        logger.info("stopping")


__all__ = ["Paths", "champion_config", "promote_version", "retrain", "rollback", "run", "train"]
