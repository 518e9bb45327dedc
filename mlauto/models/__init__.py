"""Model families registry and the PyTorch MLP."""

from mlauto.models.families import FAMILIES, Family, build_estimator, families_for_task, plan_families
from mlauto.models.mlp import TorchMLPClassifier, TorchMLPRegressor, epoch_history

__all__ = ["FAMILIES", "Family", "TorchMLPClassifier", "TorchMLPRegressor", "build_estimator", "epoch_history",
           "families_for_task", "plan_families"]
