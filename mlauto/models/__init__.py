"""Model families registry and the PyTorch MLP."""

from mlauto.models.families import FAMILIES, Family, build_estimator
from mlauto.models.mlp import TorchMLPClassifier

__all__ = ["FAMILIES", "Family", "TorchMLPClassifier", "build_estimator"]
