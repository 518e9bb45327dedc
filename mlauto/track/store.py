"""MLflow tracking: a parent run per experiment, a child run per trial, and the model registry.

The default store is SQLite under the run folder; a tracking server URI works the same way.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
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
from mlauto.errors import ModelNotFoundError
from mlauto.tune import FinalModel, SearchResult

logger = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"  # the champion before the last promotion: what a rollback restores
BUNDLE_DIR = "bundle"


def sqlite_uri(root: str) -> str:
    return f"sqlite:///{os.path.join(os.path.abspath(root), 'mlflow.db')}"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=os.path.dirname(os.path.abspath(mlauto.__file__)),
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def ensure_experiment(uri: str, name: str, artifact_root: str) -> str:
    """Experiment id for ``name``, created with artifacts under ``artifact_root`` if new."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    os.makedirs(artifact_root, exist_ok=True)
    try:
        return client.create_experiment(name, artifact_location=os.path.abspath(artifact_root))
    except MlflowException:  # created concurrently
        return client.get_experiment_by_name(name).experiment_id


def _params(d: dict[str, Any], prefix: str = "") -> list[Param]:
    return [Param(f"{prefix}{k}", str(v)[:6000]) for k, v in sorted(d.items())]


def _metrics(d: dict[str, float], prefix: str = "") -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(f"{prefix}{k}", float(v), now, 0) for k, v in sorted(d.items()) if np.isfinite(v)]


def log_trials(client: MlflowClient, experiment_id: str, parent_run_id: str, search: SearchResult,
               tags: dict[str, str]) -> list[str]:
    """One child run per trial with its family, params, metrics and training seconds."""
    run_ids = []
    for trial in search.trials:
        run = client.create_run(
            experiment_id,
            run_name=f"{trial.family}-{trial.trial_id}",
            tags={"mlflow.parentRunId": parent_run_id, "mlauto.family": trial.family,
                  "mlauto.trial_id": trial.trial_id, **tags},
        )
        params = _params(trial.params) + [Param("family", trial.family)]
        client.log_batch(run.info.run_id, metrics=_metrics(trial.metrics), params=params)
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


def track_experiment(
    *,
    uri: str,
    experiment: str,
    artifact_root: str,
    model_name: str,
    search: SearchResult,
    final: FinalModel,
    reference: np.ndarray,
    sample_input: pd.DataFrame,
    fingerprint: str,
    config: dict[str, Any],
    seed: int,
    counts: dict[str, int],
    extra_tags: dict[str, str] | None = None,
    artifacts: dict[str, str] | None = None,
    task: str = "binary",
) -> TrackedModel:
    """Log the parent run, every trial, the best model with its preprocessing; register it.

    ``artifacts`` maps an artifact folder to a local file logged into the parent run.

    The new version gets no alias here: promotion is the caller's decision.
    """
    exp_id = ensure_experiment(uri, experiment, artifact_root)
    client = MlflowClient(uri)
    lineage = {"mlauto.data_fingerprint": fingerprint, "mlauto.seed": str(seed),
               "mlauto.version": mlauto.__version__, "mlauto.python": platform.python_version(),
               **({"mlauto.git_commit": c} if (c := git_commit()) else {}), **(extra_tags or {})}
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}",
                          tags=lineage) as parent:
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
        mlflow.log_dict(config, "config.json")
        for name, path in (artifacts or {}).items():
            mlflow.log_artifact(path, artifact_path=name)
        with tempfile.TemporaryDirectory() as tmp:
            board = os.path.join(tmp, "leaderboard.csv")
            search.leaderboard().to_csv(board, index=False)
            mlflow.log_artifact(board)
            prep = final.pipeline.named_steps["prep"]
            client.log_batch(run_id, metrics=_metrics({"features_out": len(prep.feature_names_out_),
                                                       "features_before_selection": len(prep.transformed_names_)}))
            meta = {
                "family": final.family, "params": final.params, "fingerprint": fingerprint,
                "val_metrics": final.val_metrics, "test_metrics": final.test_metrics,
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
            np.save(os.path.join(tmp, "reference.npy"), reference)
            mlflow.log_artifact(os.path.join(tmp, "meta.json"), BUNDLE_DIR)
            mlflow.log_artifact(os.path.join(tmp, "reference.npy"), BUNDLE_DIR)
        signature = infer_signature(sample_input, final.pipeline.predict(sample_input))
        info = mlflow.sklearn.log_model(
            final.pipeline, name="model", signature=signature, registered_model_name=model_name,
            serialization_format="cloudpickle", pip_requirements=_requirements(),
        )
    version = str(info.registered_model_version)
    for key, value in {"run_id": run_id, "family": final.family, "fingerprint": fingerprint,
                       f"val_{search.metric}": final.val_metrics[search.metric],
                       f"test_{search.metric}": final.test_metrics[search.metric]}.items():
        client.set_model_version_tag(model_name, version, key, str(value))
    logger.info("registered %s version %s (run %s)", model_name, version, run_id)
    return TrackedModel(run_id, model_name, version, trial_ids)


def _requirements() -> list[str]:
    import sklearn
    import torch

    return [f"mlauto=={mlauto.__version__}", f"scikit-learn=={sklearn.__version__}",
            f"numpy=={np.__version__}", f"pandas=={pd.__version__}", f"torch=={torch.__version__.split('+')[0]}"]


def set_alias(uri: str, model_name: str, version: str, alias: str = CHAMPION) -> None:
    MlflowClient(uri).set_registered_model_alias(model_name, alias, str(version))
    logger.info("alias %s of %s -> version %s", alias, model_name, version)


def promote(uri: str, model_name: str, version: str) -> str | None:
    """Point ``champion`` at ``version`` and ``previous`` at the old champion; returns the old one."""
    client = MlflowClient(uri)
    try:
        client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise ModelNotFoundError(f"model {model_name!r} has no version {version} in {uri}") from exc
    try:
        old: str | None = str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        old = None
    if old == str(version):
        return old
    set_alias(uri, model_name, str(version), CHAMPION)
    if old is not None:
        set_alias(uri, model_name, old, PREVIOUS)
    return old


def previous_champion(uri: str, model_name: str) -> str:
    try:
        return str(MlflowClient(uri).get_model_version_by_alias(model_name, PREVIOUS).version)
    except MlflowException as exc:
        raise ModelNotFoundError(f"model {model_name!r} has no '{PREVIOUS}' alias: nothing to roll back to") from exc
