"""Model families registry and the PyTorch MLP (imported, with torch, only when first used)."""

from typing import Any

from mlauto.models.families import (FAMILIES, Family, build_estimator, families_for_task, plan_families,
                                    point_categorical)
from mlauto.models.history import epoch_history

__all__ = ["FAMILIES", "Family", "TorchMLPClassifier", "TorchMLPRegressor", "build_estimator", "epoch_history",
           "families_for_task", "plan_families", "point_categorical"]


def __getattr__(name: str) -> Any:
    if name in ("TorchMLPClassifier", "TorchMLPRegressor"):
        from mlauto.models import mlp

        return getattr(mlp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
