"""RBF support vector machines: a calibrated SVC, or SVR on a standardized target."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from mlauto.models.families.base import FAMILIES, Family


def _calibrated_svc(cv: int = 3, **params: Any) -> BaseEstimator:
    """SVC with sigmoid (Platt) probabilities fitted on out-of-fold decisions: what
    ``SVC(probability=True)`` did, which scikit-learn 1.9 deprecates in favour of this."""
    from sklearn.calibration import CalibratedClassifierCV  # when built: a trial loads only its family
    from sklearn.svm import SVC

    return CalibratedClassifierCV(SVC(**params), method="sigmoid", cv=cv, ensemble=False)


def _scaled_svr(**params: Any) -> BaseEstimator:
    """SVR on a standardized target: ``C`` and ``epsilon`` then mean the same on any target's scale."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    return TransformedTargetRegressor(SVR(**params), transformer=StandardScaler())


@FAMILIES.register("svm")
class SVMFamily(Family):
    """RBF support vector machine: a calibrated SVC, or SVR. Its fit grows with the square of the
    rows, so it sits out searches on more than ``max_rows`` training rows."""

    name = "svm"
    needs_scaling = True
    classifier = staticmethod(_calibrated_svc)  # type: ignore[assignment]
    regressor = staticmethod(_scaled_svr)  # type: ignore[assignment]
    max_rows = 5000

    def params_for(self, params: dict[str, Any], seed: int, task: str) -> dict[str, Any]:
        if task == "regression":  # SVR has no randomness
            return dict(params)
        return super().params_for(params, seed, task)
