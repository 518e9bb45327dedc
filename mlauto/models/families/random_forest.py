"""Random forests."""

from __future__ import annotations

from typing import Any

from mlauto.models.families.base import FAMILIES, Family


@FAMILIES.register("random_forest")
class RandomForestFamily(Family):
    name = "random_forest"
    classifier = "sklearn.ensemble:RandomForestClassifier"  # imported when built: a trial loads only its family
    regressor = "sklearn.ensemble:RandomForestRegressor"
    portfolio = ({"n_estimators": 100, "max_depth": 16, "min_samples_leaf": 1},)  # deep trees, as by default

    def params_for(self, params: dict[str, Any], seed: int, task: str) -> dict[str, Any]:
        # One core per trial: Tune runs trials side by side.
        return super().params_for({"n_jobs": 1, **params}, seed, task)
