"""Model selection: family leaderboard, top-k ensembles, sample-size runs and their Pareto front."""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from mlauto.config.schema import SampleSizeConf
from mlauto.errors import ConfigError
from mlauto.models.ensemble import SoftVoteEnsemble, build_ensemble
from mlauto.tune.curves import CURVE_COLUMNS, Curves, fastest_within, pareto_front, sample_size_runs, subsample
from mlauto.tune.search import SearchResult, TrialResult
from mlauto.tune.select import choose_ensemble, family_leaderboard, top_trials

from conftest import make_config


def _trial(tid: str, family: str, score: float, params: dict | None = None, status: str = "ok") -> TrialResult:
    metrics = {"score": score, "train_seconds": 0.1 * len(tid), "infer_ms_per_row": 0.01} if status == "ok" else {}
    return TrialResult(tid, family, params or {"C": score}, metrics, status)


def _search(trials: list[TrialResult], mode: str = "max", metric: str = "roc_auc") -> SearchResult:
    good = [t for t in trials if t.status == "ok"]
    best = (max if mode == "max" else min)(good, key=lambda t: t.score)
    return SearchResult(trials, best, metric, mode, "/tmp")


TRIALS = [_trial("a", "logreg", 0.90), _trial("b", "logreg", 0.95), _trial("c", "hist_gb", 0.93),
          _trial("d", "hist_gb", 0.80), _trial("e", "mlp", 0.70), _trial("f", "mlp", math.nan),
          _trial("g", "random_forest", 0.0, status="failed")]


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
    dup = _trial("h", "logreg", 0.95, params={"C": 0.95})  # same config as "b"
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


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(n_samples=400, n_features=8, n_informative=4, flip_y=0.1, random_state=0)
    return X[:250], y[:250], X[250:], y[250:]


# Single depth-4 trees on one random feature per split: weak and different, so their vote is better.
WEAK_TREES = [_trial(f"t{i}", "random_forest", 0.9 - i * 0.01,
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
    trials = [_trial("lr", "logreg", 1.0, {"C": 100.0, "max_iter": 1000}),
              _trial("stump", "random_forest", 0.6, {"n_estimators": 1, "max_depth": 1, "max_features": 1})]
    decision = choose_ensemble(trials, (X[:200], y[:200], X[200:], y[200:]), method=method, metric="roc_auc",
                               mode="max")
    assert decision.best_single_score == 1.0
    assert not decision.kept and decision.model is None
    assert decision.ensemble_score <= 1.0 and "does not beat" in decision.reason


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


def test_sample_size_runs_one_row_per_config_and_fraction(ray_session, blobs):
    trials = [_trial("lr", "logreg", 0.9, {"C": 1.0, "max_iter": 500}),
              _trial("hgb", "hist_gb", 0.8, {"max_iter": 20})]
    curves = sample_size_runs(trials, blobs, SampleSizeConf(fractions=[1.0, 0.2, 0.5]), "roc_auc", "max", "binary", 1)
    frame = curves.frame
    assert list(frame.columns)[:len(CURVE_COLUMNS)] == CURVE_COLUMNS
    assert len(frame) == 6
    assert sorted(zip(frame["config_id"], frame["fraction"])) == sorted(
        (c, f) for c in ("lr", "hgb") for f in (0.2, 0.5, 1.0))
    for _, rows in frame.groupby("config_id"):
        assert rows["n_train"].tolist() == [50, 125, 250]  # fractions sorted, n_train grows
    assert (frame["train_seconds"] > 0).all()
    assert frame["score"].between(0.5, 1.0).all()
    assert len(curves.pareto) >= 1 and set(curves.pareto["config_id"]) <= {"lr", "hgb"}
    pick = curves.fastest_within
    best = frame["score"].max()
    assert pick["score"] >= best - 0.01 and pick["tolerance"] == 0.01
    within = frame[frame["score"] >= best - 0.01]
    assert pick["train_seconds"] == within["train_seconds"].min()


def test_curves_properties_follow_mode():
    curves = Curves(POINTS, "log_loss", "min", 0.0)
    assert curves.fastest_within["config_id"] == "A"
    assert sorted(curves.pareto["config_id"]) == ["A", "F"]


def test_selection_config_is_validated():
    cfg = make_config(["tune.ensemble.method=soft_vote", "tune.ensemble.k=2", "tune.sample_sizes.fractions=[]"])
    assert cfg.tune.ensemble.method == "soft_vote" and cfg.tune.sample_sizes.fractions == []
    with pytest.raises(ConfigError, match="tune.ensemble.method"):
        make_config(["tune.ensemble.method=bagging"])
    with pytest.raises(ConfigError, match="tune.sample_sizes.fractions"):
        make_config(["tune.sample_sizes.fractions=[0.5,1.5]"])


def test_pipeline_reports_family_leaderboard_and_curves(trained):
    from mlflow.tracking import MlflowClient

    from mlauto import context, train

    cfg, result = trained
    board = result.family_board
    assert sorted(board["family"]) == sorted(cfg.families)  # models=fast: logreg and hist_gb
    for _, row in board.iterrows():
        scores = [t.score for t in result.search.trials if t.family == row["family"] and t.status == "ok"]
        assert row["score"] == max(scores)
    assert result.ensemble is not None and result.ensemble.method == "none" and not result.ensemble.kept
    frame = result.curves.frame
    top = top_trials(result.search, cfg.tune.sample_sizes.top_k)
    assert len(frame) == len(top) * len(cfg.tune.sample_sizes.fractions)
    summary = train.training_summary(result, cfg)
    assert [r["family"] for r in summary["family_leaderboard"]] == board["family"].tolist()
    assert summary["fastest_within"]["config_id"] in {t.trial_id for t in top}
    assert summary["ensemble"]["kept"] is False
    client = MlflowClient(context.tracking_uri(cfg))
    logged = {a.path for folder in ("selection", "curves", "pareto")
              for a in client.list_artifacts(result.tracked.run_id, folder)}
    assert logged == {"selection/family_leaderboard.csv", "curves/learning_curves.csv", "pareto/pareto.csv"}
    assert os.path.isdir(os.path.join(cfg.root, "selection"))


def test_kept_ensemble_is_registered_and_loads_like_any_family(trained, tmp_path):
    """A kept ensemble goes into the Pipeline as the "model" step, registers and loads back."""
    from mlauto import context, train
    from mlauto.tune import warm_start_point
    from mlauto.track import BundleLoader, TrackTarget, TrainingRecord, sqlite_uri, track_experiment
    from mlauto.tune.select import ensemble_final

    cfg, result = trained
    splits, prep = result.splits, result.final.pipeline.named_steps["prep"]
    f, t = splits.features, splits.target
    data = (prep.transform(splits.train[f]), splits.train[t].to_numpy(), prep.transform(splits.val[f]),
            splits.val[t].to_numpy())
    # Best-first members led by a one-split stump: the vote with two logistic regressions ranks far better.
    members = [_trial("stump", "random_forest", 0.99, {"n_estimators": 1, "max_depth": 1, "max_features": 1}),
               _trial("lr1", "logreg", 0.98, {"C": 1.0, "max_iter": 1000}),
               _trial("lr2", "logreg", 0.97, {"C": 0.1, "max_iter": 1000})]
    decision = choose_ensemble(members, data, method="soft_vote", metric="roc_auc", mode="max")
    assert decision.kept, decision.reason
    final = ensemble_final(prep, decision, splits)
    assert final.family == "ensemble" and final.params["method"] == "soft_vote"
    assert final.val_metrics["roc_auc"] == pytest.approx(decision.ensemble_score)
    uri = sqlite_uri(str(tmp_path))
    tracked = track_experiment(
        TrackTarget(uri, "ens", str(tmp_path / "art"), "ens"), result.search, final,
        TrainingRecord("f", 0, splits.counts(), "binary", reference=data[0][:20], sample_input=splits.train[f].head(5)),
        config={})
    bundle = BundleLoader(uri, "ens")(tracked.version)
    proba = bundle.pipeline.predict_proba(splits.test[f])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba, final.pipeline.predict_proba(splits.test[f]))
    assert bundle.meta["family"] == "ensemble"
    assert warm_start_point({"logreg": {"space": {}}}, bundle.meta["family"], bundle.meta["params"]) is None
