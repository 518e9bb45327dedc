"""Model families: one class each, registered by name, all with scikit-learn's fit/predict face."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlauto.models.mlp import TorchMLPClassifier
from mlauto.registry import Registry

FAMILIES: Registry["Family"] = Registry("model family", "families")


class Family:
    """Builds an estimator from sampled params; ``needs_scaling`` adds a StandardScaler in front."""

    name: str = ""
    needs_scaling: bool = False
    accelerated: bool = False  # trains on a GPU when given one (tune.gpus_per_trial)
    estimator: type[BaseEstimator]
    seed_param: str | None = "random_state"

    def build(self, params: dict[str, Any], seed: int) -> BaseEstimator:
        kwargs = dict(params)
        if self.seed_param:
            kwargs[self.seed_param] = seed
        est = self.estimator(**kwargs)
        if self.needs_scaling:
            return Pipeline([("scale", StandardScaler()), ("est", est)])
        return est


@FAMILIES.register("logreg")
class LogisticRegressionFamily(Family):
    name = "logreg"
    needs_scaling = True
    estimator = LogisticRegression


@FAMILIES.register("random_forest")
class RandomForestFamily(Family):
    name = "random_forest"
    estimator = RandomForestClassifier

    def build(self, params: dict[str, Any], seed: int) -> BaseEstimator:
        # One core per trial: Tune runs trials side by side.
        return super().build({"n_jobs": 1, **params}, seed)


@FAMILIES.register("hist_gb")
class HistGradientBoostingFamily(Family):
    name = "hist_gb"
    estimator = HistGradientBoostingClassifier


@FAMILIES.register("mlp")
class TorchMLPFamily(Family):
    name = "mlp"
    needs_scaling = True
    estimator = TorchMLPClassifier
    seed_param = "seed"
    accelerated = True


def build_estimator(family: str, params: dict[str, Any], seed: int, task: str = "binary") -> BaseEstimator:
    """An unfitted estimator of ``family`` for ``task`` (binary, multiclass or regression)."""
    return FAMILIES.get(family)().build(params, seed)
