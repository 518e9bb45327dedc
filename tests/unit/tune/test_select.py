"""Model selection without Ray: family leaderboard, top-k ensembles, curves and their Pareto front.
Sample-size runs and ensembles through Tune and the pipeline: tests/integration/test_select.py."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException

from mlauto.errors import ConfigError
from mlauto.models.ensemble import SoftVoteEnsemble, build_ensemble
from mlauto.tune.curves import Curves, fastest_within, pareto_front, subsample
from mlauto.tune.search import SearchResult, TrialResult
from mlauto.tune.select import choose_ensemble, family_leaderboard, top_trials

from tests.helpers import make_config, trial_result


def _search(trials: list[TrialResult], mode: str = "max", metric: str = "roc_auc") -> SearchResult:
    good = [t for t in trials if t.status == "ok"]
    best = (max if mode == "max" else min)(good, key=lambda t: t.score)
    return SearchResult(trials, best, metric, mode, "/tmp")


TRIALS = [trial_result("a", "logreg", 0.90), trial_result("b", "logreg", 0.95), trial_result("c", "hist_gb", 0.93),
          trial_result("d", "hist_gb", 0.80), trial_result("e", "mlp", 0.70), trial_result("f", "mlp", math.nan),
          trial_result("g", "random_forest", 0.0, status="failed")]


def test_family_leaderboard_is_best_trial_per_family_sorted_by_mode():
    board = family_leaderboard(_search(TRIALS, "max"))
    assert list(board.columns) == ["family", "score", "train_seconds", "infer_ms_per_row", "trial_id"]
    assert board["family"].tolist() == ["logreg", "hist_gb", "mlp"]  # failed-only random_forest absent
    assert board["score"].tolist() == [0.95, 0.93, 0.70]
    assert board["trial_id"].tolist() == ["b", "c", "e"]
    low = family_leaderboard(_search(TRIALS[:6], "min", "log_loss"))
    assert low["family"].tolist() == ["mlp", "hist_gb", "logreg"]
    assert low["score"].tolist() == [0.70, 0.80, 0.90]


def test_top_trials_are_distinct_configs_best_first():
    dup = trial_result("h", "logreg", 0.95, params={"C": 0.95})  # same config as "b"
    top = top_trials(_search([*TRIALS, dup]), 3)
    assert [t.trial_id for t in top] == ["b", "c", "a"]


# Hand-made (seconds, score) points. For mode=max: A(1, .80) B(2, .90) C(3, .85: dominated by B)
# D(4, .95) E(2, .88: dominated by B) F(1, .80: ties A, nobody strictly better).
POINTS = pd.DataFrame({
    "config_id": list("ABCDEF"), "family": ["x"] * 6, "params": [{}] * 6, "fraction": [1.0] * 6,
    "n_train": [10] * 6, "train_seconds": [1.0, 2.0, 3.0, 4.0, 2.0, 1.0],
    "score": [0.80, 0.90, 0.85, 0.95, 0.88, 0.80],
})


def test_pareto_front_max_mode():
    front = pareto_front(POINTS, "max")
    assert front["config_id"].tolist() == ["A", "F", "B", "D"]


def test_pareto_front_min_mode():
    # Lower is better: A(1, .80) is the best and fastest, so it alone (with its tie F) is non-dominated.
    assert sorted(pareto_front(POINTS, "min")["config_id"]) == ["A", "F"]
    pts = POINTS.assign(score=[0.50, 0.40, 0.45, 0.30, 0.42, 0.60])
    # F(1, .60) is dominated by A(1, .50); C(3, .45) by B(2, .40); E(2, .42) by B.
    assert pareto_front(pts, "min")["config_id"].tolist() == ["A", "B", "D"]


def test_pareto_front_skips_rows_without_score():
    pts = POINTS.assign(score=[np.nan, 0.90, 0.85, 0.95, 0.88, 0.80])
    assert pareto_front(pts, "max")["config_id"].tolist() == ["F", "B", "D"]


def test_fastest_within_max_mode():
    pick = fastest_within(POINTS, "max", 0.05)  # best .95: within are B (.90, 2s) and D (.95, 4s)
    assert pick["config_id"] == "B" and pick["score"] == 0.90 and pick["train_seconds"] == 2.0
    assert pick["tolerance"] == 0.05
    assert fastest_within(POINTS, "max", 0.0)["config_id"] == "D"
    assert fastest_within(POINTS, "max", 0.2)["config_id"] == "A"  # all within; A and F tie, first kept


def test_fastest_within_min_mode():
    pts = POINTS.assign(score=[0.50, 0.40, 0.45, 0.30, 0.42, 0.60])
    assert fastest_within(pts, "min", 0.1)["config_id"] == "B"  # best .30: within .40 -> B (2s) and D (4s)
    assert fastest_within(pts, "min", 0.0)["config_id"] == "D"
    assert fastest_within(pts, "min", 0.2)["config_id"] == "A"  # A (.50) and F (.60 > .50) at 1s: A
    with pytest.raises(Exception, match="tolerance"):
        fastest_within(pts, "min", -1)


def test_subsample_is_stratified_and_seeded():
    y = np.array([0] * 80 + [1] * 20)
    rows = subsample(y, 0.25, "binary", seed=3)
    assert len(rows) == 25 and (y[rows] == 1).sum() == 5
    assert np.array_equal(rows, subsample(y, 0.25, "binary", seed=3))
    assert len(subsample(y, 1.0, "binary", 0)) == 100


# Single depth-4 trees on one random feature per split: weak and different, so their vote is better.
WEAK_TREES = [trial_result(f"t{i}", "random_forest", 0.9 - i * 0.01,
                     {"n_estimators": 1, "max_depth": 4, "min_samples_leaf": leaf, "bootstrap": False,
                      "max_features": 1}) for i, leaf in enumerate([1, 3, 5])]


@pytest.mark.parametrize("method", ["soft_vote", "stacking"])
def test_ensemble_that_beats_the_best_single_model_is_kept(blobs, method):
    decision = choose_ensemble(WEAK_TREES, blobs, method=method, metric="roc_auc", mode="max")
    assert decision.kept and decision.model is not None
    assert decision.ensemble_score > decision.best_single_score == decision.members[0]["val_score"]
    summary = decision.summary()
    assert summary["kept"] is True and len(summary["members"]) == 3
    model = pickle.loads(pickle.dumps(decision.model))
    X_va = blobs[2]
    proba = model.predict_proba(X_va)
    assert proba.shape == (len(X_va), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba, decision.model.predict_proba(X_va))
    assert list(model.classes_) == [0, 1]
    assert set(model.predict(X_va)) <= {0, 1}


@pytest.mark.parametrize("method", ["soft_vote", "stacking"])
def test_ensemble_that_cannot_beat_the_best_single_model_is_dropped(method):
    # The label is the sign of x0: logistic regression ranks validation perfectly (roc_auc 1.0),
    # so no ensemble can score strictly better; a tie keeps the single model.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    trials = [trial_result("lr", "logreg", 1.0, {"C": 100.0, "max_iter": 1000}),
              trial_result("stump", "random_forest", 0.6, {"n_estimators": 1, "max_depth": 1, "max_features": 1})]
    decision = choose_ensemble(trials, (X[:200], y[:200], X[200:], y[200:]), method=method, metric="roc_auc",
                               mode="max")
    assert decision.best_single_score == 1.0
    assert not decision.kept and decision.model is None
    assert decision.ensemble_score <= 1.0 and "does not beat" in decision.reason
    lenient = choose_ensemble(trials, (X[:200], y[:200], X[200:], y[200:]), method=method, metric="roc_auc",
                              mode="max", min_gain=-0.5)  # min_gain < 0: kept unless it loses by 0.5 or more
    assert lenient.kept == (lenient.ensemble_score > 0.5)


def test_ensemble_off_or_single_config_fits_nothing(blobs):
    off = choose_ensemble(WEAK_TREES, blobs, method="none", metric="roc_auc", mode="max")
    assert not off.kept and off.members == [] and off.best_single_score == WEAK_TREES[0].score
    one = choose_ensemble(WEAK_TREES[:1], blobs, method="soft_vote", metric="roc_auc", mode="max")
    assert not one.kept and "nothing to combine" in one.reason


def test_soft_vote_regression_is_mean_of_predictions():
    from sklearn.linear_model import LinearRegression

    X = np.arange(20, dtype=float).reshape(-1, 1)
    a = LinearRegression().fit(X, 2 * X[:, 0])
    b = LinearRegression().fit(X, 4 * X[:, 0])
    vote = SoftVoteEnsemble([a, b], task="regression", prefit=True).fit(X, X[:, 0])
    np.testing.assert_allclose(vote.predict(X), 3 * X[:, 0], atol=1e-9)
    with pytest.raises(Exception, match="unknown ensemble method"):
        build_ensemble("bagging", [a, b])


def test_curves_properties_follow_mode():
    curves = Curves(POINTS, "log_loss", "min", 0.0)
    assert curves.fastest_within["config_id"] == "A"
    assert sorted(curves.pareto["config_id"]) == ["A", "F"]


def test_selection_config_is_validated():
    cfg = make_config(["tune.ensemble.method=soft_vote", "tune.ensemble.k=2", "tune.sample_sizes.fractions=[]"])
    assert cfg.tune.ensemble.method == "soft_vote" and cfg.tune.sample_sizes.fractions == []
    with pytest.raises(ConfigCompositionException, match="tune.ensemble.method"):  # an Enum of the schema
        make_config(["tune.ensemble.method=bagging"])
    with pytest.raises(ConfigError, match="tune.sample_sizes.fractions"):
        make_config(["tune.sample_sizes.fractions=[0.5,1.5]"])
