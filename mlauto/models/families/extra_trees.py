"""Extremely randomized trees: a random forest with random split points."""

from __future__ import annotations

from mlauto.models.families.base import FAMILIES
from mlauto.models.families.random_forest import RandomForestFamily


@FAMILIES.register("extra_trees")
class ExtraTreesFamily(RandomForestFamily):
    name = "extra_trees"
    classifier = "sklearn.ensemble:ExtraTreesClassifier"  # imported when built: a trial loads only its family
    regressor = "sklearn.ensemble:ExtraTreesRegressor"
