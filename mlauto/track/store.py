"""MLflow tracking: a parent run per experiment, a child run per trial, and the model registry.

The default store is SQLite under the run folder; a tracking server URI works the same way.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import mlauto
from mlauto.redact import redact
from mlauto import storage
from mlauto.errors import ModelNotFoundError
from mlauto.models import epoch_history
from mlauto.track.lineage import (
    batches,
    experiment_dir,
    git_commit,
    history_metrics,
    iteration_metrics,
    package_versions,
    reported_history,
    trial_iterations,
    write_plots,
)
from mlauto.tune import FinalModel, SearchResult

logger = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"  # the champion before the last promotion: what a rollback restores
BUNDLE_DIR = "bundle"


def sqlite_uri(root: str) -> str:
    return f"sqlite:///{os.path.join(os.path.abspath(root), 'mlflow.db')}"


def ensure_experiment(uri: str, name: str, artifact_root: str) -> str:
    """Experiment id for ``name``, created with artifacts under ``artifact_root`` if new."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    # A tracking server (http://) stores artifacts where it was told (--artifacts-destination) and proxies
    # them to every node; a file or SQLite store writes them under the run's root (any filesystem).
    location = None if uri.startswith(("http://", "https://")) else storage.normalize(artifact_root)
    if location is not None:
        storage.makedirs(location)
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created concurrently
        return client.get_experiment_by_name(name).experiment_id


def _params(d: dict[str, Any], prefix: str = "") -> list[Param]:
    return [Param(f"{prefix}{k}", str(v)[:6000]) for k, v in sorted(d.items())]


def _metrics(d: dict[str, float], prefix: str = "") -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(f"{prefix}{k}", float(v), now, 0) for k, v in sorted(d.items()) if np.isfinite(v)]


def params_json(params: dict[str, Any]) -> str:
    """Params as typed JSON (MLflow params are strings): what reproduce reads back."""
    return json.dumps(params, sort_keys=True, default=str)


def log_trials(client: MlflowClient, experiment_id: str, parent_run_id: str, search: SearchResult,
               tags: dict[str, str]) -> list[str]:
    """One child run per trial: family, params, metrics (with Tune's per-iteration results and the
    model's per-epoch history as steps, where there are any), training seconds and training rows."""
    run_ids = []
    tune_dir = experiment_dir(search.storage_path, [t.trial_id for t in search.trials if t.status == "ok"])
    for trial in search.trials:
        n_train = trial.metrics.get("n_train")
        run = client.create_run(
            experiment_id,
            run_name=f"{trial.family}-{trial.trial_id}",
            tags={"mlflow.parentRunId": parent_run_id, "mlauto.family": trial.family,
                  "mlauto.trial_id": trial.trial_id, "mlauto.params_json": params_json(trial.params)[:8000],
                  **({"mlauto.n_train": str(int(n_train))} if n_train is not None else {}), **tags},
        )
        params = _params(trial.params) + [Param("family", trial.family)]
        if n_train is not None:
            params.append(Param("n_train", str(int(n_train))))
        rows = trial_iterations(tune_dir, trial.trial_id)
        metrics = _metrics(trial.metrics) + iteration_metrics(rows) + history_metrics(reported_history(rows))
        for i, chunk in enumerate(batches(metrics)):
            client.log_batch(run.info.run_id, metrics=chunk, params=params if i == 0 else [])
        if not metrics:
            client.log_batch(run.info.run_id, params=params)
        if trial.error:
            client.set_tag(run.info.run_id, "mlauto.error", trial.error[:5000])
        client.set_terminated(run.info.run_id, "FINISHED" if trial.status == "ok" else "FAILED")
        run_ids.append(run.info.run_id)
    return run_ids


@dataclass
class TrackedModel:
    run_id: str
    model_name: str
    version: str
    trial_run_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrackTarget:
    """Where a training run is logged and registered."""

    uri: str
    experiment: str
    artifact_root: str
    model_name: str


@dataclass(frozen=True)
class TrainingRecord:
    """What the model was trained on and how, for lineage and the serving bundle."""

    fingerprint: str
    seed: int
    counts: dict[str, int]
    task: str
    reference: np.ndarray  # training rows (transformed) the monitor tests drift against
    sample_input: pd.DataFrame  # raw rows for the model signature
    extra_tags: dict[str, str] = field(default_factory=dict)


def track_experiment(target: TrackTarget, search: SearchResult, final: FinalModel, record: TrainingRecord,
                     config: dict[str, Any], artifacts: dict[str, str] | None = None, curves: Any = None
                     ) -> TrackedModel:
    """Log the parent run, every trial, the best model with its preprocessing; register it.

    The parent holds the lineage a reproduction needs: data fingerprint, git commit, seed, package
    versions (tags, and ``packages.json``), the config (``config.yaml`` and ``config.json``), the
    leaderboard, plots. ``artifacts`` maps an artifact folder to a local file logged into it.

    The new version gets no alias here: promotion is the caller's decision.
    """
    uri, experiment, model_name = target.uri, target.experiment, target.model_name
    fingerprint, seed, counts, task = record.fingerprint, record.seed, record.counts, record.task
    exp_id = ensure_experiment(uri, experiment, target.artifact_root)
    client = MlflowClient(uri)
    packages = package_versions()
    lineage = {"mlauto.data_fingerprint": fingerprint, "mlauto.seed": str(seed),
               "mlauto.version": mlauto.__version__, "mlauto.python": platform.python_version(),
               "mlauto.git_commit": git_commit(),
               "mlauto.packages": ", ".join(f"{k}=={v}" for k, v in packages.items()), **record.extra_tags}
    history = epoch_history(final.pipeline)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}",
                          tags={**lineage, "mlauto.family": final.family,
                                "mlauto.params_json": params_json(final.params)[:8000]}) as parent:
        run_id = parent.info.run_id
        trial_ids = log_trials(client, exp_id, run_id, search, lineage)
        client.log_batch(
            run_id,
            params=_params({"family": final.family, "task": task, "metric": search.metric,
                            "num_trials": len(search.trials),
                            "seed": seed, **{f"rows_{k}": v for k, v in counts.items()}})
            + _params(final.params, "best."),
            metrics=_metrics(final.val_metrics, "val_") + _metrics(final.test_metrics, "test_")
            + _metrics({"train_seconds": final.train_seconds, "search_seconds": search.wall_seconds}),
        )
        for chunk in batches(history_metrics(history)):
            client.log_batch(run_id, metrics=chunk)
        config = redact(config)  # a password inside data.url or tracking.uri must not reach the store
        mlflow.log_dict(config, "config.json")
        mlflow.log_dict(config, "config.yaml")
        mlflow.log_dict(packages, "packages.json")
        for name, path in (artifacts or {}).items():
            with storage.local_copy(path) as local:  # a file under an object-store root is fetched first
                mlflow.log_artifact(local, artifact_path=name)
        with tempfile.TemporaryDirectory() as tmp:
            board = os.path.join(tmp, "leaderboard.csv")
            leaderboard = search.leaderboard()
            leaderboard.to_csv(board, index=False)
            mlflow.log_artifact(board)
            for png in write_plots(os.path.join(tmp, "plots"), leaderboard, search.metric, search.mode, history,
                                   curves):
                mlflow.log_artifact(png, artifact_path="plots")
            prep = final.pipeline.named_steps["prep"]
            client.log_batch(run_id, metrics=_metrics({"features_out": len(prep.feature_names_out_),
                                                       "features_before_selection": len(prep.transformed_names_)}))
            meta = {
                "family": final.family, "params": final.params, "fingerprint": fingerprint,
                "val_metrics": final.val_metrics, "test_metrics": final.test_metrics,
                "val_rows": getattr(final, "val_rows", 0) or None,
                "schema": prep.schema_, "feature_names": prep.feature_names_out_,
                "categorical_features": prep.categorical_features_,
                "feature_selection": prep.selection_,
                "classes": ([c.item() if hasattr(c, "item") else c for c in final.pipeline.classes_]
                            if task != "regression" else None),
                "task": task,
                "metric": search.metric,
            }
            with open(os.path.join(tmp, "meta.json"), "w") as fh:
                json.dump(meta, fh, indent=2, default=str)
            np.save(os.path.join(tmp, "reference.npy"), record.reference)
            mlflow.log_artifact(os.path.join(tmp, "meta.json"), BUNDLE_DIR)
            mlflow.log_artifact(os.path.join(tmp, "reference.npy"), BUNDLE_DIR)
        signature = infer_signature(record.sample_input, final.pipeline.predict(record.sample_input))
        with tempfile.TemporaryDirectory() as code:
            info = mlflow.sklearn.log_model(
                final.pipeline, name="model", signature=signature, registered_model_name=model_name,
                serialization_format="cloudpickle", pip_requirements=_requirements(),
                code_paths=[package_source(code)],
            )
    version = str(info.registered_model_version)
    for key, value in {"run_id": run_id, "family": final.family, "fingerprint": fingerprint,
                       f"val_{search.metric}": final.val_metrics[search.metric],
                       f"test_{search.metric}": final.test_metrics[search.metric]}.items():
        client.set_model_version_tag(model_name, version, key, str(value))
    logger.info("registered %s version %s (run %s)", model_name, version, run_id)
    return TrackedModel(run_id, model_name, version, trial_ids)


def package_source(dest: str) -> str:
    """A copy of the mlauto package (no byte code) under ``dest``, for the model's ``code_paths``.

    The pickled pipeline references mlauto's classes (the preprocessor, the transforms, the MLP), and
    mlauto is not on any package index: shipped with the model, its code lands in ``model/code`` and
    MLflow puts that folder on ``sys.path`` when it loads the model, so ``mlflow models predict/serve``
    works in an environment built from the requirements alone. Where mlauto is already imported (the
    Serve replicas, the monitor), the imported package wins: ``sys.path`` is consulted only for a
    top-level package that is not imported yet.
    """
    target = os.path.join(dest, "mlauto")
    shutil.copytree(os.path.dirname(os.path.abspath(mlauto.__file__)), target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _requirements() -> list[str]:
    """What loading the pickled pipeline imports (mlauto itself ships as code, see :func:`package_source`)."""
    import scipy
    import sklearn
    import torch

    return [f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}", f"pandas=={pd.__version__}",
            f"scipy=={scipy.__version__}", f"torch=={torch.__version__.split('+')[0]}"]


def set_alias(uri: str, model_name: str, version: str, alias: str = CHAMPION) -> None:
    MlflowClient(uri).set_registered_model_alias(model_name, alias, str(version))
    logger.info("alias %s of %s -> version %s", alias, model_name, version)


def previous_champion(uri: str, model_name: str) -> str:
    try:
        return str(MlflowClient(uri).get_model_version_by_alias(model_name, PREVIOUS).version)
    except MlflowException as exc:
        raise ModelNotFoundError(f"model {model_name!r} has no '{PREVIOUS}' alias: nothing to roll back to") from exc
