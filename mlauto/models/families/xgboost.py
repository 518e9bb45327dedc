"""XGBoost: gradient-boosted trees (histogram method), rounds early-stopped on the trial's validation split."""

from __future__ import annotations

import math
from typing import Any

from mlauto.models.families.base import FAMILIES, BoosterFamily, cap_int


@FAMILIES.register("xgboost")
class XGBoostFamily(BoosterFamily):
    """XGBoost through :mod:`mlauto.models.xgb` (imported, with xgboost, when a model is built).

    Opt-in (``opt_in: true`` in its YAML): ``models.include`` must name it, until the development suite
    shows that a second booster beside LightGBM pays for the trials it takes from the others at equal
    budgets (not yet measured). ``n_estimators`` is a ceiling: early stopping picks the rounds, the
    refit trains that count scaled to its rows. Depth is capped so an average leaf keeps ~20 rows.
    """

    name = "xgboost"
    classifier = "mlauto.models.xgb:XGBoostClassifier"
    regressor = "mlauto.models.xgb:XGBoostRegressor"
    portfolio = ({"learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0,
                  "colsample_bytree": 1.0, "reg_lambda": 1.0},  # XGBoost's defaults
                 {"learning_rate": 0.05, "max_depth": 4, "min_child_weight": 5.0, "subsample": 0.8,
                  "colsample_bytree": 0.8, "reg_lambda": 3.0})  # shallower, regularized trees for small data

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        space = cap_int(space, "max_depth", max(2, int(math.log2(max(4, n_rows // 20)))))
        return self.sampled_columns(space, n_features)
