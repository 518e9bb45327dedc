"""Histogram gradient boosting (scikit-learn's LightGBM-style booster)."""

from __future__ import annotations

from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from mlauto.models.families.base import FAMILIES, Family


@FAMILIES.register("hist_gb")
class HistGradientBoostingFamily(Family):
    name = "hist_gb"
    classifier = HistGradientBoostingClassifier
    regressor = HistGradientBoostingRegressor
