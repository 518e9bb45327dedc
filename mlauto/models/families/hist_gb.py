"""Histogram gradient boosting (scikit-learn's LightGBM-style booster)."""

from __future__ import annotations

from typing import Any

from mlauto.models.families.base import FAMILIES, Family


@FAMILIES.register("hist_gb")
class HistGradientBoostingFamily(Family):
    name = "hist_gb"
    classifier = "sklearn.ensemble:HistGradientBoostingClassifier"  # imported when built: a trial loads only its family
    regressor = "sklearn.ensemble:HistGradientBoostingRegressor"
    portfolio = ({"learning_rate": 0.1, "max_leaf_nodes": 31, "l2_regularization": 1e-6},)  # scikit-learn's defaults

    def stopped_at(self, model: Any) -> int | None:
        n_iter, max_iter = getattr(model, "n_iter_", None), getattr(model, "max_iter", None)
        return int(n_iter) if n_iter is not None and max_iter is not None and n_iter < max_iter else None

    def fixed_length(self, params: dict[str, Any], length: int) -> dict[str, Any]:
        return {**params, "max_iter": length, "early_stopping": False}
