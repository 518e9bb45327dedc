"""Model families: one class each, registered by name, all with scikit-learn's fit/predict face.

A family knows which estimator to build for each task (binary, multiclass, regression), may refuse
data it is not suited to (``skip_reason``), and may narrow its search space to the data's size
(``space_for``) before the search starts.
"""

from __future__ import annotations

import logging
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from mlauto.errors import ConfigError, MlautoError
from mlauto.models.mlp import TorchMLPClassifier, TorchMLPRegressor
from mlauto.registry import Registry
from mlauto.tasks import TASKS

logger = logging.getLogger(__name__)

FAMILIES: Registry["Family"] = Registry("model family", "families")


class Family:
    """Builds an estimator from sampled params; ``needs_scaling`` adds a StandardScaler in front.

    ``classifier``/``regressor`` is None where the family cannot do that kind of task.
    """

    name: str = ""
    needs_scaling: bool = False
    accelerated: bool = False  # trains on a GPU when given one (tune.gpus_per_trial)
    classifier: type[BaseEstimator] | None = None
    regressor: type[BaseEstimator] | None = None
    seed_param: str | None = "random_state"
    max_rows: int | None = None  # above this many training rows the family is skipped (too slow)

    @classmethod
    def supports(cls, task: str) -> bool:
        return (cls.regressor if task == "regression" else cls.classifier) is not None

    @classmethod
    def tasks(cls) -> list[str]:
        return [t for t in TASKS if cls.supports(t)]

    def estimator_for(self, task: str) -> type[BaseEstimator]:
        est = self.regressor if task == "regression" else self.classifier
        if est is None:
            raise MlautoError(f"model family {self.name!r} cannot do {task}; it does {', '.join(self.tasks())}")
        return est

    def params_for(self, params: dict[str, Any], seed: int, task: str) -> dict[str, Any]:
        """Constructor arguments for ``task``: the sampled/fixed params plus the seed."""
        kwargs = dict(params)
        if self.seed_param:
            kwargs[self.seed_param] = seed
        return kwargs

    def build(self, params: dict[str, Any], seed: int, task: str = "binary") -> BaseEstimator:
        est = self.estimator_for(task)(**self.params_for(params, seed, task))
        if self.needs_scaling:
            return Pipeline([("scale", StandardScaler()), ("est", est)])
        return est

    def skip_reason(self, n_rows: int) -> str | None:
        """Why this family sits out a search on ``n_rows`` training rows, or None."""
        if self.max_rows is not None and n_rows > self.max_rows:
            return f"{n_rows} training rows > its limit of {self.max_rows}"
        return None

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        """The search space narrowed to the data's size; by default the configured one."""
        return space


def _cap_int(space: dict[str, Any], param: str, high: int) -> dict[str, Any]:
    """An int range (or choice) of ``param`` capped at ``high``, keeping at least its lowest value."""
    spec = space.get(param)
    if not isinstance(spec, dict):
        return space
    spec = dict(spec)
    if spec.get("type") == "choice":
        values = [v for v in spec["values"] if v <= high] or [min(spec["values"])]
        spec["values"] = values
    elif spec.get("high") is not None:
        spec["high"] = max(int(spec["low"]) + 1, min(int(spec["high"]), high))
        if spec["high"] > high:  # too few rows even for the lowest value + 1: a fixed choice
            spec = {"type": "choice", "values": [max(1, min(int(spec["low"]), high))]}
    return {**space, param: spec}


@FAMILIES.register("logreg")
class LinearFamily(Family):
    """Logistic regression, or ridge regression for a numeric target (``C`` becomes ``alpha = 1/C``)."""

    name = "logreg"
    needs_scaling = True
    classifier = LogisticRegression
    regressor = Ridge

    def params_for(self, params: dict[str, Any], seed: int, task: str) -> dict[str, Any]:
        kwargs = super().params_for(params, seed, task)
        if task == "regression" and "C" in kwargs:
            kwargs["alpha"] = 1.0 / kwargs.pop("C")
        return kwargs


LogisticRegressionFamily = LinearFamily  # the old name


@FAMILIES.register("random_forest")
class RandomForestFamily(Family):
    name = "random_forest"
    classifier = RandomForestClassifier
    regressor = RandomForestRegressor

    def params_for(self, params: dict[str, Any], seed: int, task: str) -> dict[str, Any]:
        # One core per trial: Tune runs trials side by side.
        return super().params_for({"n_jobs": 1, **params}, seed, task)


@FAMILIES.register("extra_trees")
class ExtraTreesFamily(RandomForestFamily):
    name = "extra_trees"
    classifier = ExtraTreesClassifier
    regressor = ExtraTreesRegressor


@FAMILIES.register("hist_gb")
class HistGradientBoostingFamily(Family):
    name = "hist_gb"
    classifier = HistGradientBoostingClassifier
    regressor = HistGradientBoostingRegressor


@FAMILIES.register("knn")
class KNeighborsFamily(Family):
    """k nearest neighbours on standardized features; ``n_neighbors`` at most half the training rows."""

    name = "knn"
    needs_scaling = True
    classifier = KNeighborsClassifier
    regressor = KNeighborsRegressor
    seed_param = None

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        return _cap_int(space, "n_neighbors", max(1, n_rows // 2))


def _calibrated_svc(cv: int = 3, **params: Any) -> BaseEstimator:
    """SVC with sigmoid (Platt) probabilities fitted on out-of-fold decisions: what
    ``SVC(probability=True)`` did, which scikit-learn 1.9 deprecates in favour of this."""
    return CalibratedClassifierCV(SVC(**params), method="sigmoid", cv=cv, ensemble=False)


def _scaled_svr(**params: Any) -> BaseEstimator:
    """SVR on a standardized target: ``C`` and ``epsilon`` then mean the same on any target's scale."""
    return TransformedTargetRegressor(SVR(**params), transformer=StandardScaler())


@FAMILIES.register("svm")
class SVMFamily(Family):
    """RBF support vector machine: a calibrated SVC, or SVR. Its fit grows with the square of the
    rows, so it sits out searches on more than ``max_rows`` training rows."""

    name = "svm"
    needs_scaling = True
    classifier = staticmethod(_calibrated_svc)  # type: ignore[assignment]
    regressor = staticmethod(_scaled_svr)  # type: ignore[assignment]
    max_rows = 5000

    def params_for(self, params: dict[str, Any], seed: int, task: str) -> dict[str, Any]:
        if task == "regression":  # SVR has no randomness
            return dict(params)
        return super().params_for(params, seed, task)


@FAMILIES.register("mlp")
class TorchMLPFamily(Family):
    """The PyTorch MLP; a batch is at most a quarter of the training rows, so an epoch has a few steps."""

    name = "mlp"
    needs_scaling = True
    classifier = TorchMLPClassifier
    regressor = TorchMLPRegressor
    seed_param = "seed"
    accelerated = True

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        return _cap_int(space, "batch_size", max(8, n_rows // 4))


def build_estimator(family: str, params: dict[str, Any], seed: int, task: str = "binary") -> BaseEstimator:
    """An unfitted estimator of ``family`` for ``task`` (binary, multiclass or regression)."""
    return FAMILIES.get(family)().build(params, seed, task)


def families_for_task(task: str) -> list[str]:
    """The registered families that can do ``task``."""
    if task not in TASKS:
        raise ConfigError("tune.task", task, TASKS)
    return [name for name in FAMILIES.names() if FAMILIES.get(name).supports(task)]


def plan_families(families: dict[str, dict[str, Any]], task: str, n_rows: int, n_features: int
                  ) -> dict[str, dict[str, Any]]:
    """The configured families that take part in a search on this data, each with its space fitted to it.

    A family that cannot do ``task`` or refuses the data size is left out with a logged reason; none
    left is an error naming why each went.
    """
    able = set(families_for_task(task))
    planned, dropped = {}, {}
    for name, conf in families.items():
        family = FAMILIES.get(name)()
        reason = None if name in able else f"it cannot do {task}"
        reason = reason or family.skip_reason(n_rows)
        if reason:
            dropped[name] = reason
            logger.info("model family %s left out: %s", name, reason)
            continue
        planned[name] = {**conf, "space": family.space_for(dict(conf.get("space", {})), n_rows, n_features)}
    if not planned:
        raise MlautoError(f"no configured model family can be searched for {task} on {n_rows} rows: "
                          + "; ".join(f"{k}: {v}" for k, v in dropped.items()))
    return planned
