"""Extremely randomized trees: a random forest with random split points."""

from __future__ import annotations

from mlauto.models.families.base import FAMILIES
from mlauto.models.families.random_forest import RandomForestFamily


@FAMILIES.register("extra_trees")
class ExtraTreesFamily(RandomForestFamily):
    name = "extra_trees"
    classifier = "sklearn.ensemble:ExtraTreesClassifier"  # imported when built: a trial loads only its family
    regressor = "sklearn.ensemble:ExtraTreesRegressor"
    portfolio = ({"n_estimators": 100, "max_depth": 16, "min_samples_leaf": 1, "max_features": 0.5},
                 {"n_estimators": 200, "max_depth": 16, "min_samples_leaf": 1, "max_features": 1.0})
