"""Model families registry and the PyTorch MLP."""

from mlauto.models.families import FAMILIES, Family, build_estimator
from mlauto.models.mlp import TorchMLPClassifier, epoch_history

__all__ = ["FAMILIES", "Family", "TorchMLPClassifier", "build_estimator", "epoch_history"]
