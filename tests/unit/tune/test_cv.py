"""k-fold CV for trials on small data (tune.cv_folds, tune.cv_max_rows), without Ray."""

from __future__ import annotations

import numpy as np
import pytest

from mlauto.config.schema import TuneConf
from mlauto.errors import ConfigError
from mlauto.models import build_estimator
from mlauto.tune.cv import cross_validate, cv_data, make_folds, use_cv
from mlauto.tune.metrics import evaluate

from tests.helpers import make_config


def _holdout(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    return X[: n * 3 // 4], y[: n * 3 // 4], X[n * 3 // 4:], y[n * 3 // 4:]


def test_cv_below_the_row_threshold_only():
    t = TuneConf()
    assert (t.cv_folds, t.cv_max_rows) == (5, 10_000)
    assert use_cv(3_000, t.cv_folds, t.cv_max_rows) and not use_cv(10_001, t.cv_folds, t.cv_max_rows)
    assert not use_cv(3_000, 0, t.cv_max_rows)  # cv_folds=0: the holdout
    assert make_config([]).tune.cv_folds == 0  # the tests pin the fast holdout (tests/helpers.FAST_TESTS)


def test_folds_cover_train_and_validation_once_and_stratify():
    X, y, folds = cv_data(_holdout(), "binary", 5, seed=0)
    assert len(X) == len(y) == 200 and len(folds) == 5
    held = np.sort(np.concatenate([va for _, va in folds]))
    assert (held == np.arange(200)).all()  # every row is held out exactly once
    share = [y[va].mean() for _, va in folds]
    assert max(share) - min(share) < 0.05  # stratified
    assert all(len(np.intersect1d(tr, va)) == 0 for tr, va in folds)
    regression = make_folds(np.linspace(0, 1, 50), "regression", 5, seed=0)
    assert len(regression) == 5


def test_cross_validate_reports_fold_mean_and_std():
    data = cv_data(_holdout(), "binary", 4, seed=0)

    def report(model, X, y):
        scores = evaluate(model, X, y, "binary")
        return {"score": scores["accuracy"], "val_accuracy": scores["accuracy"]}

    out = cross_validate(lambda: build_estimator("logreg", {}, 0), data, report, lambda m, X, y: {})
    X, y, folds = data
    expected = [evaluate(build_estimator("logreg", {}, 0).fit(X[tr], y[tr]), X[va], y[va], "binary")["accuracy"]
                for tr, va in folds]
    assert out["score"] == pytest.approx(np.mean(expected)) and out["score_std"] == pytest.approx(np.std(expected))
    assert out["folds"] == 4 and out["n_train"] == 150


def test_cv_folds_of_one_is_refused():
    with pytest.raises(ConfigError, match="tune.cv_folds"):
        make_config(["tune.cv_folds=1"])
