"""Re-run a recorded trial (or a training run's final fit) from its MLflow record and compare scores.

The record gives everything: the data snapshot (by fingerprint, from the snapshot store under
``root``), the logged config (splits, cleaning, features, task, metric), the seeds, the family and
its params. The splits and the preprocessing are rebuilt, the model is fitted with the trial's
thread count, and its validation score is compared with the recorded one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import yaml
from mlflow.entities import Run

from mlauto import storage
from mlauto.config import Config
from mlauto.errors import ReproduceError
from mlauto.track.runs import PARENT_TAG, find_run

logger = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """What a run recorded about how it was trained."""

    run_id: str
    kind: str  # "child" (a trial) or "parent" (a training run: its final fit)
    parent_id: str
    family: str
    params: dict[str, Any]
    seed: int  # the models' seed (the search seed); the split seed is config.seed
    config: Config
    metric: str
    score: float  # the recorded validation score
    fingerprint: str  # the snapshot
    train_fingerprint: str  # the data trained on: the snapshot, or it plus production rows
    train_data: str | None
    production_rows: int
    n_train: int | None


def _parse(value: str) -> Any:
    """A param string back to its value (``str(v)`` was logged): numbers, booleans, None."""
    if value == "None":
        return None
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def load_record(uri: str, run_id: str, experiment: str | None = None) -> RunRecord:
    """The record of a trial or training run; its training run holds the config and the data lineage."""
    import mlflow

    from mlauto.config import config_from_dict

    run = find_run(uri, run_id, experiment)
    parent_id = run.data.tags.get(PARENT_TAG)
    parent: Run = find_run(uri, parent_id) if parent_id else run
    tags, ptags = run.data.tags, parent.data.tags
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="config.json",
                                                       dst_path=tmp, tracking_uri=uri)
        except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
            raise ReproduceError(f"run {parent.info.run_id} has no logged config.json, so it cannot be "
                                 f"reproduced: {exc}") from exc
        with open(path) as fh:
            logged = json.load(fh)
    try:
        config = config_from_dict(logged)
    except Exception as exc:  # noqa: BLE001 - OmegaConf's validation errors
        raise ReproduceError(
            f"the config logged with run {parent.info.run_id} does not fit this mlauto's schema ({exc}); reproduce "
            f"it with the mlauto it was trained with (version {ptags.get('mlauto.version', '?')}, git commit "
            f"{ptags.get('mlauto.git_commit', 'unknown')})") from exc
    family = run.data.params.get("family") or tags.get("mlauto.family", "")
    if "mlauto.params_json" in tags:
        params = json.loads(tags["mlauto.params_json"])
    elif parent_id:  # recorded before typed params: parse the string params back
        params = {k: _parse(v) for k, v in run.data.params.items() if k not in ("family", "n_train")}
    else:
        params = {k[len("best."):]: _parse(v) for k, v in run.data.params.items() if k.startswith("best.")}
    metric = parent.data.params.get("metric", config.tune.metric)
    score = run.data.metrics.get("score") if parent_id else run.data.metrics.get(f"val_{metric}")
    if score is None:
        raise ReproduceError(f"run {run.info.run_id} recorded no validation score (status {run.info.status}); "
                             "only a trial that finished, or a training run, can be reproduced")
    n_train = run.data.params.get("n_train") or (parent.data.params.get("rows_train") if not parent_id else None)
    fingerprint = ptags.get("mlauto.data_fingerprint", "")
    return RunRecord(
        run_id=run.info.run_id, kind="child" if parent_id else "parent", parent_id=parent.info.run_id,
        family=family, params=params, seed=int(parent.data.params.get("seed", ptags.get("mlauto.seed", config.seed))),
        config=config, metric=metric, score=float(score), fingerprint=fingerprint,
        train_fingerprint=ptags.get("mlauto.train_fingerprint", fingerprint), train_data=ptags.get("mlauto.train_data"),
        production_rows=int(ptags.get("mlauto.production_rows", "0") or 0),
        n_train=int(float(n_train)) if n_train is not None else None)


def resolve_data(record: RunRecord, root: str) -> str:
    """The file the run trained on; refuses when it is gone."""
    roots = list(dict.fromkeys([storage.normalize(root), storage.normalize(record.config.root)]))
    if record.production_rows or record.train_fingerprint != record.fingerprint:
        candidates = [record.train_data] + [storage.join(r, "retrain", f"{record.train_fingerprint}.parquet")
                                            for r in roots]
        found = next((p for p in candidates if p and storage.exists(p)), None)
        if found is None:
            raise ReproduceError(
                f"run {record.run_id} trained on snapshot {record.fingerprint} plus {record.production_rows} labelled "
                f"production rows (data {record.train_fingerprint}), kept in {record.train_data or candidates[1]}, "
                "which no longer exists; without those rows it cannot be reproduced")
        return found
    if not record.fingerprint:
        raise ReproduceError(f"run {record.run_id} recorded no data fingerprint (tag mlauto.data_fingerprint)")
    candidates = [storage.join(r, "snapshots", f"{record.fingerprint}.parquet") for r in roots]
    found = next((p for p in candidates if storage.exists(p)), None)
    if found is None:
        raise ReproduceError(
            f"snapshot {record.fingerprint} of run {record.run_id} is not in {candidates[0]} (pruned by "
            "ingest.keep_snapshots, or another root?); `mlauto action=snapshots` lists the stored snapshots")
    return found


def reproduce(uri: str, run_id: str, root: str, experiment: str | None = None,
              record: RunRecord | None = None) -> dict[str, Any]:
    """Refit the run's family and params on its data, splits and seed; compare validation scores.

    Ray must be up (the data is read and cleaned through Ray Data, as in training). ``record``: the
    run's :func:`load_record`, when the caller has it already.
    """
    import torch
    from threadpoolctl import threadpool_limits

    from mlauto.data import Snapshot
    from mlauto.models import FAMILIES, build_estimator
    from mlauto.tasks import detect_task
    from mlauto.train import prepare_stage
    from mlauto.tune import evaluate

    record = record or load_record(uri, run_id, experiment)
    if record.family not in _families():
        raise ReproduceError(f"run {record.run_id}'s model is a {record.family!r}, not one fitted family; reproduce "
                             "one of its trials (`mlauto action=runs` lists them)")
    path = resolve_data(record, root)
    logger.info("reproducing %s run %s: %s %s, seed %d, data %s", record.kind, record.run_id, record.family,
                record.params, record.seed, path)
    start = time.perf_counter()
    cfg = record.config
    with tempfile.TemporaryDirectory() as scratch:  # cleaning and profiling outputs: not the run's root
        snapshot = Snapshot(path, record.train_fingerprint, 0, [], time.time())
        splits, prep, X_train = prepare_stage(dataclasses.replace(cfg, root=scratch), snapshot, {})
    features, target = splits.features, splits.target
    y_train = splits.train[target].to_numpy()
    task = cfg.tune.task if cfg.tune.task != "auto" else detect_task(y_train)
    threads = max(1, int(cfg.tune.cpus_per_trial))  # as the trial ran: torch and BLAS/OpenMP threads
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            estimator = build_estimator(record.family, record.params, record.seed, task)
            estimator.fit(X_train, y_train)
            scores = evaluate(estimator, prep.transform(splits.val[features]), splits.val[target].to_numpy(), task)
    finally:
        torch.set_num_threads(torch_threads)
    new = float(scores[record.metric])
    tolerance = FAMILIES.get(record.family).reproduce_tolerance  # absolute, on the validation metric
    difference = abs(new - record.score) if not (math.isnan(new) and math.isnan(record.score)) else 0.0
    status = "exact" if new == record.score else "within tolerance" if difference <= tolerance else "differs"
    result = {
        "run_id": record.run_id, "kind": record.kind, "parent_run_id": record.parent_id, "family": record.family,
        "params": record.params, "seed": record.seed, "split_seed": cfg.seed, "data": path,
        "data_fingerprint": record.train_fingerprint, "metric": record.metric, "recorded": record.score,
        "reproduced": new, "difference": difference, "tolerance": tolerance, "status": status,
        "ok": status != "differs", "n_train": len(y_train), "recorded_n_train": record.n_train,
        "seconds": round(time.perf_counter() - start, 3),
    }
    log = logger.info if result["ok"] else logger.warning
    log("reproduced %s: recorded %s=%.6f, now %.6f (|diff| %.3g, tolerance %.3g): %s", record.run_id, record.metric,
        record.score, new, difference, tolerance, status)
    return result


def format_reproduce(result: dict[str, Any]) -> str:
    """A few lines for the console: what was re-run and old vs new score."""
    return "\n".join([
        f"run        {result['run_id']} " + ("(a training run: its final fit)" if result["kind"] == "parent"
                                              else f"(a trial of training run {result['parent_run_id']})"),
        f"model      {result['family']} {json.dumps(result['params'], default=str)} seed {result['seed']}",
        f"data       {result['data_fingerprint']} ({result['data']}), split seed {result['split_seed']}, "
        f"{result['n_train']} training rows",
        f"val {result['metric']:<6} recorded {result['recorded']:.6f}  reproduced {result['reproduced']:.6f}  "
        f"|diff| {result['difference']:.3g} (tolerance {result['tolerance']:.3g})",
        f"status     {result['status']}",
    ])


def _families() -> list[str]:
    from mlauto.models import FAMILIES

    return FAMILIES.names()
