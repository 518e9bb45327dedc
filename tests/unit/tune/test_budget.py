"""The whole-run budget (tune.budget_s): the search's share and the stopper that keeps room after it, no Ray."""

from __future__ import annotations

import time

import pytest

from mlauto.errors import ConfigError
from mlauto.train import run_budget
from mlauto.tune.budget import FIXED_AFTER_S, REFIT_GROWTH, BudgetStopper, fits_after, member_fits, search_seconds
from mlauto.tune.search import trial_cap

from tests.helpers import make_config


def test_search_gets_what_the_run_budget_leaves():
    assert search_seconds(60, 5, None) == pytest.approx(60 - 5 - FIXED_AFTER_S)
    assert search_seconds(60, 5, 20) == 20  # tune.time_budget_s caps it
    assert search_seconds(10, 30, None) == 1.0  # overspent before the search: a token search
    assert fits_after("all", [], 3, 0) == 3 and fits_after("train", [0.5, 1.0], 2, 3) == 1 + 3 + 3


def test_stopper_keeps_room_for_the_best_configs_fits():
    stopper = BudgetStopper(time.time() + 20, fits=3, mode="max")
    assert not stopper.stop_all()
    stopper("a", {"score": 0.8, "train_seconds": 10.0, "folds": 5})  # 2 s per fit
    assert stopper.reserve_s() == pytest.approx(3 * 2.0 * REFIT_GROWTH) and not stopper.stop_all()
    stopper("b", {"score": 0.7, "train_seconds": 500.0})  # worse: its cost does not count
    assert not stopper.stop_all()
    stopper("c", {"score": 0.9, "train_seconds": 8.0})  # better and slow: 3 x 8 x 1.5 = 36 s > 20 s left
    assert stopper.stop_all()
    low = BudgetStopper(time.time() + 100, fits=1, mode="min")
    low("a", {"score": 2.0, "train_seconds": 1.0})
    low("b", {"score": 1.0, "train_seconds": 3.0})
    assert low.best_fit_s == 3.0  # lower is better for an error metric


def test_stopper_keeps_room_for_the_ensemble_candidates_at_each_familys_cost():
    assert member_fits("all", 5) == 5 + 2 and member_fits("train", 1) == 1  # out-of-fold fits, then refits
    stopper = BudgetStopper(time.time() + 60, fits=3, mode="max", per_member=7, members=2)
    stopper("a", {"score": 0.8, "train_seconds": 5.0, "folds": 5, "config": {"family": "logreg"}})  # 1 s per fit
    stopper("b", {"score": 0.9, "train_seconds": 10.0, "folds": 5, "config": {"family": "lightgbm"}})  # 2 s
    stopper("c", {"score": 0.7, "train_seconds": 50.0, "folds": 5, "config": {"family": "svm"}})  # 3rd: not counted
    stopper("d", {"score": 0.85, "train_seconds": 99.0, "folds": 5, "config": {"family": "logreg"}})  # logreg's best now
    expected = (3 * 2.0 + 7 * (2.0 + 99.0 / 5)) * REFIT_GROWTH
    assert stopper.reserve_s() == pytest.approx(expected) and stopper.stop_all()  # 249 s > 60 s left
    grid = BudgetStopper(time.time() + 60, fits=1, mode="max", per_member=1, members=1)
    grid("a", {"score": 0.5, "train_seconds": 1.0, "config": {"grid_point": {"family": "knn"}}})
    assert list(grid.family_best) == ["knn"]


def test_run_budget_sets_the_search_budget_and_lifts_the_trial_cap():
    t = make_config(["tune.budget_s=60", "tune.refit=all", "tune.sample_sizes.fractions=[]"]).tune
    conf, stopper = run_budget(t, time.time() - 4, "max")
    assert 60 - 4 - FIXED_AFTER_S - 1 < conf.time_budget_s <= 60 - 4 - FIXED_AFTER_S
    assert trial_cap(conf) == -1 and stopper is not None and stopper.fits == 3
    plain = make_config([]).tune
    assert run_budget(plain, time.time(), "max") == (plain, None)
    with pytest.raises(ConfigError, match="tune.budget_s"):
        make_config(["tune.budget_s=0"])
