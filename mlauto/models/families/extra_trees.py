"""Extremely randomized trees: a random forest with random split points."""

from __future__ import annotations

from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

from mlauto.models.families.base import FAMILIES
from mlauto.models.families.random_forest import RandomForestFamily


@FAMILIES.register("extra_trees")
class ExtraTreesFamily(RandomForestFamily):
    name = "extra_trees"
    classifier = ExtraTreesClassifier
    regressor = ExtraTreesRegressor
