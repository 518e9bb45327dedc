"""LightGBM: gradient-boosted trees, rounds early-stopped on the trial's validation split."""

from __future__ import annotations

from typing import Any

from mlauto.models.families.base import FAMILIES, BoosterFamily, cap_int


@FAMILIES.register("lightgbm")
class LightGBMFamily(BoosterFamily):
    """LightGBM through :mod:`mlauto.models.boosting` (imported, with lightgbm, when a model is built).

    ``n_estimators`` is a ceiling: early stopping on validation picks the rounds, the final refit trains
    that count scaled to its rows. The space is fitted to the data: leaves and leaf sizes to the rows,
    column sampling only where there are columns to sample.
    """

    name = "lightgbm"
    classifier = "mlauto.models.boosting:BoostedClassifier"
    regressor = "mlauto.models.boosting:BoostedRegressor"
    portfolio = ({"learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20, "colsample_bytree": 1.0,
                  "reg_lambda": 1e-3},  # LightGBM's defaults
                 {"learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 10, "colsample_bytree": 0.7,
                  "reg_lambda": 1.0})  # smaller, regularized trees for small data

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        space = cap_int(space, "num_leaves", max(4, n_rows // 20))  # leaves of >= ~20 rows on average
        space = cap_int(space, "min_child_samples", max(2, n_rows // 50))
        return self.sampled_columns(space, n_features)
