"""The XGBoost family on tiny data, no Ray: every task with labels of any type, early stopping on
validation, reports only at the rungs, a data-aware space, a refit of the early-stopped rounds scaled,
and a fitted model that pickles and clones with its params."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from tests.helpers import booster_data
from mlauto.models import FAMILIES, build_estimator, plan_families

PARAMS = {"n_estimators": 1000, "learning_rate": 0.2, "max_depth": 3, "n_jobs": 1, "tree_method": "hist"}


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_xgboost_early_stops_on_validation_and_reports_only_at_the_rungs(task):
    X, y, Xv, yv = booster_data(task)
    model = build_estimator("xgboost", PARAMS, seed=0, task=task).set_params(rungs=(1, 3, 9, 27))
    reports = []
    model.fit(X, y, on_epoch=lambda unit, m: reports.append((unit, m.predict(Xv))), validation=(Xv, yv))
    assert model.stopped_early_ and model.n_rounds_ < 1000  # noisy target: validation stops it early
    units = [u for u, _ in reports]
    assert units and units == sorted(units) and set(units) <= {1, 3, 9, 27}  # never a report per round
    # a rung's partial model predicts like the booster cut at that many rounds (10 rounds per unit here)
    unit, partial = reports[0]
    cut = model.predict(Xv, iteration_range=(0, unit * 10)) if task == "regression" else None
    if cut is not None:
        np.testing.assert_allclose(partial, cut, rtol=1e-5)
    if task != "regression":
        assert model.predict_proba(Xv).shape == (len(Xv), len(np.unique(y)))
        assert set(model.predict(Xv)) <= set(np.unique(y))
    assert clone(model).get_params()["rungs"] == (1, 3, 9, 27)
    assert model.callbacks is None and model.early_stopping_rounds is None  # a plain model is what is kept


def test_string_classes_come_back_as_given():
    X, y, Xv, yv = booster_data("multiclass")
    names = np.array(["high", "low", "mid"])
    model = build_estimator("xgboost", PARAMS, seed=0, task="multiclass").fit(X, names[y], validation=(Xv, names[yv]))
    assert list(model.classes_) == ["high", "low", "mid"]
    assert set(model.predict(Xv)) <= set(names) and model.stopped_early_
    accuracy = (model.predict(Xv) == names[yv]).mean()
    assert accuracy > 0.5  # three classes: chance is ~0.33
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(Xv), model.predict(Xv))


def test_refit_scales_the_early_stopped_rounds():
    X, y, Xv, yv = booster_data("binary")
    fam = FAMILIES.get("xgboost")()
    model = build_estimator("xgboost", PARAMS, seed=0).fit(X, y, validation=(Xv, yv))
    params, note = fam.refit_params(PARAMS, model, scale=4 / 3)
    assert params["n_estimators"] == round(model.n_rounds_ * 4 / 3) and "x1.33" in note
    refit = build_estimator("xgboost", params, seed=0).fit(np.vstack([X, Xv]), np.concatenate([y, yv]))
    assert refit.n_rounds_ == params["n_estimators"] and not refit.stopped_early_
    assert fam.refit_params(PARAMS, refit, 2.0)[1] is None  # no early stopping: nothing to scale


def test_space_is_fitted_to_thebooster_data():
    conf = {"xgboost": {"space": {"max_depth": {"type": "int", "low": 2, "high": 10},
                                  "colsample_bytree": {"type": "uniform", "low": 0.5, "high": 1.0}}}}
    small = plan_families(conf, "binary", n_rows=300, n_features=5)["xgboost"]["space"]
    assert small["max_depth"]["high"] == 3  # 300 rows / 20 per leaf: 2**3 leaves
    assert "colsample_bytree" not in small
    big = plan_families(conf, "regression", n_rows=100_000, n_features=40)["xgboost"]["space"]
    assert big["max_depth"]["high"] == 10 and "colsample_bytree" in big
