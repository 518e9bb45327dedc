"""k nearest neighbours."""

from __future__ import annotations

from typing import Any

from mlauto.models.families.base import FAMILIES, Family, cap_int


@FAMILIES.register("knn")
class KNeighborsFamily(Family):
    """k nearest neighbours on standardized features; ``n_neighbors`` at most half the training rows."""

    name = "knn"
    needs_scaling = True
    classifier = "sklearn.neighbors:KNeighborsClassifier"  # imported when built: a trial loads only its family
    regressor = "sklearn.neighbors:KNeighborsRegressor"
    seed_param = None

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        return cap_int(space, "n_neighbors", max(1, n_rows // 2))
