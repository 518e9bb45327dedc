"""XGBoost: gradient-boosted trees (histogram method), rounds early-stopped on the trial's validation split."""

from __future__ import annotations

import math
from typing import Any

from mlauto.models.families.base import FAMILIES, Family, cap_int


@FAMILIES.register("xgboost")
class XGBoostFamily(Family):
    """XGBoost through :mod:`mlauto.models.xgb` (imported, with xgboost, when a model is built).

    Opt-in (``opt_in: true`` in its YAML): ``models.include`` must name it, because on the development
    suite LightGBM already covers what it does and a 60 s budget split over one more booster buys fewer
    trials of each (bench/README.md). ``n_estimators`` is a ceiling: early stopping picks the rounds,
    the refit trains that count scaled to its rows. Depth is capped so an average leaf keeps ~20 rows.
    """

    name = "xgboost"
    classifier = "mlauto.models.xgb:XGBoostClassifier"
    regressor = "mlauto.models.xgb:XGBoostRegressor"
    native_categorical = True
    reproduce_tolerance = 1e-6
    portfolio = ({"learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0,
                  "colsample_bytree": 1.0, "reg_lambda": 1.0},  # XGBoost's defaults
                 {"learning_rate": 0.05, "max_depth": 4, "min_child_weight": 5.0, "subsample": 0.8,
                  "colsample_bytree": 0.8, "reg_lambda": 3.0})  # shallower, regularized trees for small data

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        space = cap_int(space, "max_depth", max(2, int(math.log2(max(4, n_rows // 20)))))
        if n_features < 8:  # sampling 3 of 5 columns mostly removes signal
            space = {k: v for k, v in space.items() if k != "colsample_bytree"}
        return space

    def stopped_at(self, model: Any) -> int | None:
        return int(model.n_rounds_) if getattr(model, "stopped_early_", False) else None

    def fixed_length(self, params: dict[str, Any], length: int) -> dict[str, Any]:
        return {**params, "n_estimators": length}  # no validation in the refit: no early stopping
