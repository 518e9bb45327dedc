"""Logistic regression, or ridge regression for a numeric target."""

from __future__ import annotations

from typing import Any

from mlauto.models.families.base import FAMILIES, Family


@FAMILIES.register("logreg")
class LinearFamily(Family):
    """Logistic regression, or ridge regression for a numeric target (``C`` becomes ``alpha = 1/C``)."""

    name = "logreg"
    needs_scaling = True
    classifier = "sklearn.linear_model:LogisticRegression"  # imported when built: a trial loads only its family
    regressor = "sklearn.linear_model:Ridge"
    portfolio = ({"C": 1.0},)  # the library default

    def params_for(self, params: dict[str, Any], seed: int, task: str) -> dict[str, Any]:
        kwargs = super().params_for(params, seed, task)
        if task == "regression" and "C" in kwargs:
            kwargs["alpha"] = 1.0 / kwargs.pop("C")
        return kwargs


LogisticRegressionFamily = LinearFamily  # the old name
