"""MLflow tracking, registry aliases and model bundles."""

from mlauto.track.aliases import AliasMove, champion_generation, move_champion, promote
from mlauto.track.bundle import BundleLoader, ModelBundle
from mlauto.track.store import (
    CHAMPION,
    PREVIOUS,
    TrackedModel,
    TrackTarget,
    TrainingRecord,
    ensure_experiment,
    previous_champion,
    set_alias,
    sqlite_uri,
    track_experiment,
)

__all__ = [
    "CHAMPION", "PREVIOUS", "AliasMove", "BundleLoader", "ModelBundle", "TrackTarget", "TrackedModel", "TrainingRecord",
    "champion_generation", "ensure_experiment", "move_champion", "previous_champion",
    "promote", "set_alias", "sqlite_uri", "track_experiment",
]
