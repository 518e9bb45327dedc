"""LightGBM: gradient-boosted trees, rounds early-stopped on the trial's validation split."""

from __future__ import annotations

from typing import Any

from mlauto.models.families.base import FAMILIES, Family, cap_int


@FAMILIES.register("lightgbm")
class LightGBMFamily(Family):
    """LightGBM through :mod:`mlauto.models.boosting` (imported, with lightgbm, when a model is built).

    ``n_estimators`` is a ceiling: early stopping on validation picks the rounds, the final refit trains
    that count scaled to its rows. The space is fitted to the data: leaves and leaf sizes to the rows,
    column sampling only where there are columns to sample.
    """

    name = "lightgbm"
    classifier = "mlauto.models.boosting:BoostedClassifier"
    regressor = "mlauto.models.boosting:BoostedRegressor"
    native_categorical = True
    reproduce_tolerance = 1e-6
    portfolio = ({"learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20, "colsample_bytree": 1.0,
                  "reg_lambda": 1e-3},  # LightGBM's defaults
                 {"learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 10, "colsample_bytree": 0.7,
                  "reg_lambda": 1.0})  # smaller, regularized trees for small data

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        space = cap_int(space, "num_leaves", max(4, n_rows // 20))  # leaves of >= ~20 rows on average
        space = cap_int(space, "min_child_samples", max(2, n_rows // 50))
        if n_features < 8:  # sampling 3 of 5 columns mostly removes signal
            space = {k: v for k, v in space.items() if k != "colsample_bytree"}
        return space

    def stopped_at(self, model: Any) -> int | None:
        return int(model.n_rounds_) if getattr(model, "stopped_early_", False) else None

    def fixed_length(self, params: dict[str, Any], length: int) -> dict[str, Any]:
        return {**params, "n_estimators": length}  # no validation in the refit: no early stopping
