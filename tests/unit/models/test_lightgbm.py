"""The LightGBM family on tiny data, no Ray: every task, early stopping on validation, reports only at
the rungs, a data-aware space, and a refit that trains the early-stopped rounds scaled."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from tests.helpers import booster_data
from mlauto.models import FAMILIES, build_estimator, plan_families

PARAMS = {"n_estimators": 1000, "learning_rate": 0.2, "num_leaves": 8, "verbose": -1, "n_jobs": 1}


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_lightgbm_early_stops_on_validation_and_reports_only_at_the_rungs(task):
    X, y, Xv, yv = booster_data(task)
    model = build_estimator("lightgbm", PARAMS, seed=0, task=task).set_params(rungs=(1, 3, 9, 27))
    reports = []
    model.fit(X, y, on_epoch=lambda unit, m: reports.append((unit, m.predict(Xv[:3]))), validation=(Xv, yv))
    assert model.stopped_early_ and model.n_rounds_ < 1000  # noisy target: validation stops it early
    units = [u for u, _ in reports]
    assert units and units == sorted(units) and set(units) <= {1, 3, 9, 27}  # never a report per round
    if task != "regression":
        assert model.predict_proba(Xv).shape == (len(Xv), len(np.unique(y)))
    assert clone(model).get_params()["rungs"] == (1, 3, 9, 27)


def test_string_classes_are_encoded_for_validation_too():
    X, y, Xv, yv = booster_data("binary")
    names = np.array(["no", "yes"])
    model = build_estimator("lightgbm", PARAMS, seed=0).fit(X, names[y], validation=(Xv, names[yv]))
    assert set(model.predict(Xv)) <= {"no", "yes"} and model.stopped_early_


def test_refit_scales_the_early_stopped_rounds():
    X, y, Xv, yv = booster_data("binary")
    fam = FAMILIES.get("lightgbm")()
    model = build_estimator("lightgbm", PARAMS, seed=0).fit(X, y, validation=(Xv, yv))
    params, note = fam.refit_params(PARAMS, model, scale=4 / 3)
    assert params["n_estimators"] == round(model.n_rounds_ * 4 / 3) and "x1.33" in note
    without_validation = build_estimator("lightgbm", {**PARAMS, "n_estimators": 20}, seed=0).fit(X, y)
    assert without_validation.n_rounds_ == 20 and fam.refit_params(PARAMS, without_validation, 2.0)[1] is None


def test_space_is_fitted_to_thebooster_data():
    conf = {"lightgbm": {"space": {"num_leaves": {"type": "logint", "low": 4, "high": 256},
                                   "min_child_samples": {"type": "logint", "low": 2, "high": 100},
                                   "colsample_bytree": {"type": "uniform", "low": 0.5, "high": 1.0}}}}
    small = plan_families(conf, "binary", n_rows=300, n_features=5)["lightgbm"]["space"]
    assert small["num_leaves"]["high"] == 15 and small["min_child_samples"]["high"] == 6
    assert "colsample_bytree" not in small  # 5 columns: nothing worth sampling
    big = plan_families(conf, "binary", n_rows=100_000, n_features=40)["lightgbm"]["space"]
    assert big["num_leaves"]["high"] == 256 and "colsample_bytree" in big
