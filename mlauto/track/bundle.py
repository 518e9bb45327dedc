"""Loading a registered model version with everything serving and monitoring need."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlauto.errors import ModelNotFoundError
from mlauto.track.store import BUNDLE_DIR, CHAMPION


@dataclass
class ModelBundle:
    model_name: str
    version: str
    run_id: str
    pipeline: Any  # sklearn Pipeline: "prep" then "model"
    meta: dict[str, Any] = field(default_factory=dict)
    reference: np.ndarray | None = None

    @property
    def schema(self) -> list[dict[str, Any]]:
        return self.meta["schema"]

    @property
    def task(self) -> str:
        """binary, multiclass or regression (bundles logged before tasks existed were classifiers)."""
        if self.meta.get("task"):
            return self.meta["task"]
        classes = self.meta.get("classes")
        return "regression" if classes is None else "binary" if len(classes) <= 2 else "multiclass"

    def describe(self) -> dict[str, Any]:
        """What ``GET /model`` shows."""
        return {
            "name": self.model_name, "version": self.version, "run_id": self.run_id,
            "family": self.meta.get("family"), "params": self.meta.get("params"), "task": self.task,
            "metric": self.meta.get("metric"), "val_metrics": self.meta.get("val_metrics"),
            "test_metrics": self.meta.get("test_metrics"), "data_fingerprint": self.meta.get("fingerprint"),
            "classes": self.meta.get("classes"), "schema": self.schema,
        }


class BundleLoader:
    """Picklable loader handed to Serve replicas and the monitor: ``loader(version=None)``.

    ``None`` loads the version behind the ``champion`` alias.
    """

    def __init__(self, uri: str, model_name: str, with_reference: bool = True) -> None:
        self.uri = uri
        self.model_name = model_name
        self.with_reference = with_reference

    def resolve(self, version: str | int | None = None) -> str:
        client = MlflowClient(self.uri)
        try:
            if version is None:
                return str(client.get_model_version_by_alias(self.model_name, CHAMPION).version)
            return str(client.get_model_version(self.model_name, str(version)).version)
        except MlflowException as exc:
            what = f"alias '{CHAMPION}'" if version is None else f"version {version}"
            raise ModelNotFoundError(
                f"model {self.model_name!r} has no {what} in {self.uri}; run the tune stage first "
                f"(stages=[ingest,prepare,tune]) or pick an existing version"
            ) from exc

    def __call__(self, version: str | int | None = None) -> ModelBundle:
        mlflow.set_tracking_uri(self.uri)
        resolved = self.resolve(version)
        mv = MlflowClient(self.uri).get_model_version(self.model_name, resolved)
        pipeline = mlflow.sklearn.load_model(f"models:/{self.model_name}/{resolved}")
        local = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=BUNDLE_DIR, tracking_uri=self.uri)
        with open(os.path.join(local, "meta.json")) as fh:
            meta = json.load(fh)
        reference = np.load(os.path.join(local, "reference.npy")) if self.with_reference else None
        return ModelBundle(self.model_name, resolved, mv.run_id, pipeline, meta, reference)
