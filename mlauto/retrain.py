"""Retraining: a challenger trained the way the champion was, judged against it on rows neither saw,
and promoted when it is better. The monitor runs :func:`retrain` as a Ray task.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from mlauto import storage
from mlauto.config import Config
from mlauto.context import Paths, model_name, tracking_uri
from mlauto.data import Snapshot, split
from mlauto.tasks import metric_mode
from mlauto.track import BundleLoader, champion_generation, move_champion
from mlauto.train import train
from mlauto.tune import evaluate

logger = logging.getLogger(__name__)


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



def unseen_by(frame: pd.DataFrame, seen: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    """The rows of ``frame`` whose ``columns`` match no row of ``seen`` (values compared as text)."""
    if seen is None or not len(seen) or not len(frame):
        return frame

    def keys(f: pd.DataFrame) -> pd.Series:
        return pd.util.hash_pandas_object(f[columns].astype(str), index=False)

    return frame[~keys(frame).isin(set(keys(seen))).to_numpy()]


def champion_training_rows(base: Config, fingerprint: str | None) -> pd.DataFrame | None:
    """The rows the champion trained on (its train and validation splits), rebuilt from its cleaned
    data (``<root>/clean/<fingerprint>.parquet``) and its split settings; None when that file is gone."""
    path = storage.join(Paths(base.root).clean, f"{fingerprint}.parquet") if fingerprint else None
    if path is None or not storage.exists(path):
        return None
    p = base.prepare
    conf = dataclasses.replace(p, stratify=p.stratify and base.tune.task != "regression")  # as train.py splits
    train_rows, val_rows, _ = split(storage.read_parquet(path), base.data.target, conf, base.seed)
    return pd.concat([train_rows, val_rows], ignore_index=True)


def judging_rows(base: Config, champion: Any, trained: Any, judge_rows: pd.DataFrame | None
                 ) -> tuple[pd.DataFrame, str, int]:
    """The rows champion and challenger are judged on, which neither trained on: the newest labelled
    traffic held out of the challenger's training, or else the challenger's test split less any row
    the champion trained on (a new snapshot or added rows move rows between the splits).
    Returns (rows, what they are, rows left out because the champion trained on them)."""
    if judge_rows is not None:
        return judge_rows, "recent labelled traffic", 0
    test = trained.splits.test
    if champion.meta.get("fingerprint") == trained.splits.quality.get("data_fingerprint"):
        return test, "test split", 0  # the same data and seed: the same split, unseen by both
    seen = champion_training_rows(base, champion.meta.get("fingerprint"))
    if seen is None:
        logger.warning("the champion's training data (%s) is gone: its overlap with the test split cannot be "
                       "excluded", champion.meta.get("fingerprint"))
        return test, "test split (champion's training rows unknown)", 0
    unseen = unseen_by(test, seen, [*trained.splits.features, trained.splits.target])
    if len(unseen) < min(20, len(test)):
        logger.warning("only %d test row(s) are new to the champion; judging on the whole test split", len(unseen))
        return test, "test split (mostly seen by the champion)", 0
    return unseen, "test split rows the champion did not train on", len(test) - len(unseen)


def with_production_rows(snapshot: Snapshot, rows: pd.DataFrame, directory: str) -> tuple[str, str]:
    """The snapshot plus labelled production rows, as one Parquet file for cleaning and splitting.

    The rows come from JSON requests, so each column takes the snapshot's type where it fits; they go
    through the same cleaning (and quarantine) as the source. Returns the file and its fingerprint.
    """
    import hashlib

    base = storage.read_parquet(snapshot.path)
    rows = rows[[c for c in base.columns if c in rows.columns]].copy()
    for col in rows.columns:
        if base[col].dtype == object or pd.api.types.is_string_dtype(base[col].dtype):
            # text: a stored number among strings would fail the Parquet write
            rows[col] = rows[col].map(lambda v: None if v is None or v != v else str(v)).astype(object)
            continue
        try:
            rows[col] = rows[col].astype(base[col].dtype)
        except (TypeError, ValueError, OverflowError):
            # e.g. null in a numpy int column, or one stored value of another kind: a value that does not
            # fit becomes missing (cleaning quarantines it), so one bad label never fails the retrain
            if pd.api.types.is_numeric_dtype(base[col].dtype) and not pd.api.types.is_bool_dtype(base[col].dtype):
                rows[col] = pd.to_numeric(rows[col], errors="coerce")
            else:
                rows[col] = rows[col].map(lambda v: None if v is None or v != v else str(v)).astype(object)
    digest = hashlib.sha256(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()).hexdigest()
    fingerprint = f"{snapshot.fingerprint[:8]}p{digest[:7]}"
    path = storage.write_parquet(pd.concat([base, rows], ignore_index=True),
                                 storage.join(directory, f"{fingerprint}.parquet"))
    logger.info("retrain data: snapshot %s (%d rows) + %d labelled production rows -> %s", snapshot.fingerprint,
                len(base), len(rows), path)
    return path, fingerprint


def compare(champion: Any, challenger: Any, frame: pd.DataFrame, features: list[str], target: str,
             metric: str, task: str = "binary") -> tuple[str, float, float]:
    """Both models scored on the same rows with ``task``'s metrics; where ``metric`` is undefined there
    (ROC AUC on a window holding one class, R² on one row) accuracy, or for regression RMSE, stands in."""
    X, y = frame[features], frame[target].to_numpy()
    a, b = evaluate(champion, X, y, task), evaluate(challenger, X, y, task)
    if np.isnan(a[metric]) or np.isnan(b[metric]):
        metric = "rmse" if task == "regression" else "accuracy"
    return metric, a[metric], b[metric]


def promote_version(cfg: Config, version: str | None, *, reload_monitor: bool = True,
                    expected: str | None = None, generation: int | None = None) -> dict[str, Any]:
    """Make ``version`` the champion (``None``: roll back to ``previous``); the endpoint's replicas follow
    the alias in place (within ``serve.poll_s``), and the running monitor, if any, reloads whatever the
    alias points to now.

    Without ``expected`` (an operator's promote or rollback) the move always lands. With it (a retrain:
    the champion it was judged against) the alias is re-read right before the move and nothing moves
    if it points elsewhere: ``superseded`` in the result says so, with the reason.
    """
    import ray
    from ray import serve

    move = move_champion(tracking_uri(cfg), model_name(cfg), version, expected, generation)
    out = {"model_name": model_name(cfg), "previous": move.previous, "champion": move.champion,
           "endpoint_follows": False, "monitor_reloaded": False}
    if not move.moved:
        return {**out, "superseded": True, "reason": move.reason}
    if ray.is_initialized():
        out["endpoint_follows"] = cfg.serve.app_name in serve.status().applications
        if reload_monitor:
            out["monitor_reloaded"] = reload_champion(cfg)
    logger.info("champion of %s: version %s -> %s (endpoint follows within %ss: %s, monitor reloaded: %s)",
                model_name(cfg), move.previous, move.champion, cfg.serve.poll_s, out["endpoint_follows"],
                out["monitor_reloaded"])
    return out


def reload_champion(cfg: Config) -> bool:
    """Ask the running monitor, if any, to watch whatever the champion alias points to now."""
    import ray

    try:
        actor = ray.get_actor(cfg.monitor.actor_name, namespace=cfg.cluster.namespace)
    except ValueError:
        return False
    ray.get(actor.reload.remote(None))
    return True


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

    from mlauto.runtime import check_cluster_storage

    check_cluster_storage(cfg.root, tracking_uri(cfg))  # the cluster may have grown since the launcher checked
    generation = champion_generation(tracking_uri(cfg), model_name(cfg))  # before the champion: see track.aliases
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
                    warm_start=(champion.meta["family"], champion.meta["params"]),
                    add_rows=None if train_rows is None or not len(train_rows) else partial(
                        with_production_rows, rows=train_rows, directory=storage.join(cfg.root, "retrain")))
    judge, judged_on, left_out = judging_rows(base, champion, trained, judge_rows)
    # The metric the challenger's search optimized: tune.metric with "auto" resolved for the task.
    metric, champion_score, challenger_score = compare(
        champion.pipeline, trained.final.pipeline, judge, trained.splits.features, trained.splits.target,
        trained.search.metric, trained.task)
    mode = metric_mode(metric)
    margin = cfg.monitor.promote_margin
    better = (challenger_score >= champion_score + margin if mode == "max"
              else challenger_score <= champion_score - margin)
    version = trained.tracked.version
    evidence = {"mlauto.trigger": reason, "mlauto.champion_version": champion.version, "mlauto.judged_on": judged_on,
                "mlauto.judged_rows": len(judge), "mlauto.judged_rows_seen_by_champion_left_out": left_out,
                f"mlauto.challenger_{metric}": challenger_score, f"mlauto.champion_{metric}": champion_score,
                "mlauto.promote_margin": margin}
    for key, value in evidence.items():
        client.set_model_version_tag(model_name(cfg), version, key, str(value))
    decision, why = ("promoted" if better else "rejected"), ""
    if better:  # compare-and-set: only if the champion is still the one this challenger beat
        move = promote_version(cfg, version, reload_monitor=False, expected=champion.version, generation=generation)
        if move.get("superseded"):
            decision, why = "superseded", move["reason"]
            client.set_model_version_tag(model_name(cfg), version, "mlauto.superseded", why)
    client.set_model_version_tag(model_name(cfg), version, "mlauto.decision", decision)
    return {"model_name": model_name(cfg), "version": version, "promoted": decision == "promoted",
            "decision": decision, "superseded": why or None, "metric": metric,
            "task": trained.task,
            "challenger_score": challenger_score, "champion_score": champion_score, "judged_on": judged_on,
            "production_rows": 0 if train_rows is None else len(train_rows),
            "champion_version": champion.version, "reason": reason, "run_id": trained.tracked.run_id}


__all__ = ["champion_config", "champion_training_rows", "compare", "judging_rows", "promote_version",
           "reload_champion", "retrain", "split_labelled", "unseen_by", "with_production_rows"]
