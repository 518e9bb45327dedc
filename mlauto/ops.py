"""Operating what the pipeline trained: serving, promotion and rollback, the monitor's retrain
task and events, scheduled ingestion. :mod:`mlauto.pipeline` runs the stages; this module acts on
their results, and the launcher calls both.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlauto.config import Config
from mlauto.data import Snapshot
from mlauto.pipeline import Paths, block_until_stopped, data_source, loader_for, model_name, tracking_uri, train
from mlauto.tasks import metric_mode
from mlauto.track import BundleLoader, previous_champion, promote
from mlauto.tune import evaluate

logger = logging.getLogger(__name__)


def serve_options(cfg: Config) -> dict[str, Any]:
    """The serving options of ``cfg``, as plain values (:func:`mlauto.serve.app.build_app`'s keywords)."""
    s = cfg.serve
    monitor = ({"name": cfg.monitor.actor_name, "namespace": cfg.cluster.namespace, "flush_s": s.monitor_flush_s,
                "max_buffer": s.monitor_buffer} if "monitor" in cfg.stages else None)
    return {"num_replicas": s.num_replicas, "replica_cpus": s.replica_cpus, "monitor": monitor,
            "max_body_bytes": s.max_body_bytes, "admin_token": s.admin_token, "protect_predict": s.protect_predict,
            "batch": {"max_size": s.batch_max_size, "wait_s": s.batch_wait_s}, "poll_s": s.poll_s,
            "autoscaling": dict(s.autoscaling) if s.autoscaling else None}


def serve_version(cfg: Config, version: str | None) -> str:
    from mlauto.serve import deploy

    s = cfg.serve
    return deploy(loader_for(cfg), version, app_name=s.app_name, host=s.host, port=s.port,
                  route_prefix=s.route_prefix, **serve_options(cfg))


def serve_config(cfg: Config, path: str) -> dict[str, Any]:
    """Write a ``serve deploy`` config file for the champion (or ``cfg.version``); returns its content.

    The file holds the admin token (generated here when none is configured), so it is made
    readable by its owner only.
    """
    import yaml

    options = serve_options(cfg)
    if not options["admin_token"]:
        options["admin_token"] = secrets.token_urlsafe(24)
        logger.info("admin token for POST /admin/* (Authorization: Bearer ...): %s", options["admin_token"])
    s = cfg.serve
    content = {
        "proxy_location": "EveryNode",
        "http_options": {"host": s.host, "port": s.port},
        "applications": [{
            "name": s.app_name, "route_prefix": s.route_prefix, "import_path": "mlauto.serve.entry:build",
            "args": {"tracking_uri": tracking_uri(cfg), "model_name": model_name(cfg),
                     "version": cfg.version, **options},
        }],
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(content, fh, sort_keys=False)
    logger.info("wrote %s; deploy it with: RAY_AUTH_MODE=token serve deploy %s (the cluster needs mlauto "
                "installed and access to %s)", path, path, tracking_uri(cfg))
    return content


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
    return {"model_name": model_name(cfg), "previous": old, "champion": str(version), "endpoint_follows": swapped,
            "monitor_reloaded": watched}


def monitor_events(cfg: Config, limit: int = 100) -> list[dict[str, Any]]:
    """The monitor's events, newest last: from the running actor when connected, else from its log on disk."""
    import ray

    if ray.is_initialized():
        try:
            actor = ray.get_actor(cfg.monitor.actor_name, namespace=cfg.cluster.namespace)
        except ValueError:
            actor = None
        if actor is not None:
            return ray.get(actor.events_log.remote(limit))
    from mlauto.errors import MlautoError
    from mlauto.monitor.state import StateStore

    directory = os.path.join(cfg.root, "monitor", cfg.monitor.actor_name)
    if not os.path.exists(os.path.join(directory, "events.jsonl")):
        raise MlautoError(f"no monitor events in {directory}: no monitor named {cfg.monitor.actor_name!r} has run "
                          f"with root={cfg.root} and monitor.persist=true; set root, monitor.actor_name or "
                          "cluster.address to reach a running one")
    return StateStore(directory).events(limit)


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


def split_labelled(labelled: pd.DataFrame | None, holdout: int) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Labelled production rows -> (rows to train on, the newest ``holdout`` rows to judge on).

    With fewer than ``holdout`` labelled rows all of them train, and the test split judges.
    """
    if labelled is None or not len(labelled):
        return None, None
    if len(labelled) < holdout:
        return labelled, None
    return labelled.iloc[: len(labelled) - holdout], labelled.iloc[len(labelled) - holdout :]


def _compare(champion: Any, challenger: Any, frame: pd.DataFrame, features: list[str], target: str,
             metric: str, task: str = "binary") -> tuple[str, float, float]:
    """Both models scored on the same rows with ``task``'s metrics; where ``metric`` is undefined there
    (ROC AUC on a window holding one class, R² on one row) accuracy, or for regression RMSE, stands in."""
    X, y = frame[features], frame[target].to_numpy()
    a, b = evaluate(champion, X, y, task), evaluate(challenger, X, y, task)
    if np.isnan(a[metric]) or np.isnan(b[metric]):
        metric = "rmse" if task == "regression" else "accuracy"
    return metric, a[metric], b[metric]


def retrain(cfg: Config, reason: str, labelled: pd.DataFrame | None = None) -> dict[str, Any]:
    """Run by the monitor as a Ray task: train a challenger on a small budget; promote it if it is better.

    The challenger is trained the way the champion was (its logged data, prepare, families and
    search settings) with a new search seed, on a fresh ingest of the source plus the labelled
    production rows (``labelled``, from the monitor), except the newest ``monitor.holdout_labels`` of
    them: champion and challenger are judged on those, the most recent labelled traffic, which
    neither trained on. With fewer labels, both are judged on the same held-out test split (same
    split seed). A failure raises, and the live model keeps serving.
    """
    from mlflow.tracking import MlflowClient

    champion = BundleLoader(tracking_uri(cfg), model_name(cfg), with_reference=False)()
    base = champion_config(cfg, champion.run_id)
    small = dataclasses.replace(base, tune=dataclasses.replace(base.tune, num_samples=cfg.monitor.retrain_num_samples))
    # Sample-size runs inform people, not the promotion: a retrain skips them.
    small.tune.sample_sizes = dataclasses.replace(small.tune.sample_sizes, fractions=[])
    client = MlflowClient(tracking_uri(cfg))
    n_versions = len(client.search_model_versions(f"name = '{model_name(cfg)}'"))
    train_rows, judge_rows = split_labelled(labelled, cfg.monitor.holdout_labels)
    trained = train(small, {}, extra_tags={"mlauto.trigger": reason, "mlauto.champion_version": champion.version,
                                           "mlauto.production_rows": str(0 if train_rows is None else len(train_rows))},
                    search_seed=base.seed + n_versions,
                    warm_start=(champion.meta["family"], champion.meta["params"]), extra_rows=train_rows)
    judged_on = "recent labelled traffic" if judge_rows is not None else "test split"
    # The metric the challenger's search optimized: tune.metric with "auto" resolved for the task.
    metric, champion_score, challenger_score = _compare(
        champion.pipeline, trained.final.pipeline, judge_rows if judge_rows is not None else trained.splits.test,
        trained.splits.features, trained.splits.target, trained.search.metric, trained.task)
    mode = metric_mode(metric)
    margin = cfg.monitor.promote_margin
    better = challenger_score >= champion_score + margin if mode == "max" else challenger_score <= champion_score - margin
    version = trained.tracked.version
    evidence = {"mlauto.decision": "promoted" if better else "rejected", "mlauto.trigger": reason,
                "mlauto.champion_version": champion.version, "mlauto.judged_on": judged_on,
                "mlauto.judged_rows": len(judge_rows) if judge_rows is not None else len(trained.splits.test),
                f"mlauto.challenger_{metric}": challenger_score, f"mlauto.champion_{metric}": champion_score,
                "mlauto.promote_margin": margin}
    for key, value in evidence.items():
        client.set_model_version_tag(model_name(cfg), version, key, str(value))
    if better:  # the monitor reloads itself when it reads this result
        promote_version(cfg, version, reload_monitor=False)
    return {"model_name": model_name(cfg), "version": version, "promoted": bool(better), "metric": metric,
            "task": trained.task,
            "challenger_score": challenger_score, "champion_score": champion_score, "judged_on": judged_on,
            "production_rows": 0 if train_rows is None else len(train_rows),
            "champion_version": champion.version, "reason": reason, "run_id": trained.tracked.run_id}


@dataclass(frozen=True)
class RetrainOnNewSnapshot:
    """``on_new_snapshot`` for the ingest scheduler: asks the running monitor actor to retrain.

    A plain picklable object (it travels to the scheduler actor); it looks the monitor up by name
    at call time, so a restarted monitor is found. Raises when none runs, so the run record says so.
    """

    actor_name: str
    namespace: str
    timeout_s: float = 30.0

    def __call__(self, snapshot: Snapshot) -> dict[str, Any]:
        import ray

        try:
            monitor = ray.get_actor(self.actor_name, namespace=self.namespace)
        except ValueError:
            raise RuntimeError(f"no monitor actor {self.actor_name!r} in namespace {self.namespace!r} to retrain; "
                               "run with the monitor stage (and cluster.address) first") from None
        reason = f"new snapshot {snapshot.fingerprint}"
        started = ray.get(monitor.trigger_retrain.remote(reason), timeout=self.timeout_s)
        return {"monitor": self.actor_name, "retrain_started": bool(started), "reason": reason}


def start_ingest_schedule(cfg: Config) -> dict[str, Any]:
    """Start (or replace) the detached ingest scheduler of ``cfg.ingest``; Ray must be connected."""
    from mlauto.data import start_schedule

    i = cfg.ingest
    callback = RetrainOnNewSnapshot(cfg.monitor.actor_name, cfg.cluster.namespace) if i.retrain_on_new_snapshot else None
    state_dir = Paths(cfg.root).schedule(i.actor_name)
    start_schedule(i.actor_name, cfg.cluster.namespace, data_source(cfg), Paths(cfg.root).snapshots, str(i.schedule),
                   state_dir=state_dir, timezone=i.timezone, keep_snapshots=i.keep_snapshots,
                   on_new_snapshot=callback)
    logger.info("ingest schedule %r started: actor %s (namespace %s), runs recorded in %s", i.schedule,
                i.actor_name, cfg.cluster.namespace, state_dir)
    return {"actor": i.actor_name, "namespace": cfg.cluster.namespace, "schedule": i.schedule,
            "timezone": i.timezone, "state_dir": state_dir, "retrain_on_new_snapshot": i.retrain_on_new_snapshot}


def manage_schedule(cfg: Config) -> dict[str, Any]:
    """``action=schedule`` / ``schedule_status`` / ``schedule_stop``.

    Without ``cluster.address`` the scheduler lives in a local Ray owned by this command, so
    ``action=schedule`` blocks until Ctrl-C; with it, the actor outlives the command.
    """
    import ray

    from mlauto import runtime
    from mlauto.data import schedule_status, stop_schedule

    i, c = cfg.ingest, cfg.cluster
    state_dir = Paths(cfg.root).schedule(i.actor_name)
    if cfg.action == "schedule_status":
        if c.address:
            runtime.connect(c.address, c.namespace)
        return schedule_status(i.actor_name, c.namespace if ray.is_initialized() else None, state_dir)
    if cfg.action == "schedule_stop":
        if not (c.address or ray.is_initialized()):
            return {"stopped": False, "hint": "a local schedule stops with its command (Ctrl-C); give cluster.address "
                                              "to stop one running in a cluster"}
        runtime.connect(c.address, c.namespace)
        return {"stopped": stop_schedule(i.actor_name, c.namespace), "actor": i.actor_name}
    owns_ray = runtime.connect(c.address, c.namespace, c.num_cpus)
    try:
        info = start_ingest_schedule(cfg)
        if owns_ray:
            block_until_stopped(f"{i.schedule!r} (actor {i.actor_name}, runs in {state_dir})", "ingesting on schedule %s")
            stop_schedule(i.actor_name, c.namespace)
            info["final_status"] = schedule_status(i.actor_name, None, state_dir)
        return info
    finally:
        if owns_ray:
            ray.shutdown()


def snapshots(cfg: Config) -> dict[str, Any]:
    """``action=snapshots``: the stored snapshots, newest first, logged as a table."""
    from mlauto.data import current_fingerprint, format_snapshots, list_snapshots

    directory = Paths(cfg.root).snapshots
    snaps, current = list_snapshots(directory), current_fingerprint(directory)
    logger.info("%d snapshot(s) in %s (* = current):\n%s", len(snaps), directory, format_snapshots(snaps, current))
    return {"snapshot_dir": directory, "current": current, "snapshots": [s.to_dict() for s in snaps]}
