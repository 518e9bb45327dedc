"""MLflow tracking, registry aliases and model bundles."""

from mlauto.track.bundle import BundleLoader, ModelBundle
from mlauto.track.store import CHAMPION, TrackedModel, ensure_experiment, set_alias, sqlite_uri, track_experiment

__all__ = [
    "CHAMPION", "BundleLoader", "ModelBundle", "TrackedModel", "ensure_experiment", "set_alias", "sqlite_uri",
    "track_experiment",
]
