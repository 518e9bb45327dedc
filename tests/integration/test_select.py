"""Model selection through real Tune and the pipeline: sample-size runs, the leaderboard and curves, a
kept ensemble registered and loaded like any family. The pure selection rules: tests/unit/tune/test_select.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mlauto.config.schema import SampleSizeConf
from mlauto.tune.curves import CURVE_COLUMNS, sample_size_runs
from mlauto.tune.select import choose_ensemble, top_trials
from tests.helpers import trial_result


def test_sample_size_runs_one_row_per_config_and_fraction(ray_session, blobs):
    trials = [trial_result("lr", "logreg", 0.9, {"C": 1.0, "max_iter": 500}),
              trial_result("hgb", "hist_gb", 0.8, {"max_iter": 20})]
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
    members = [trial_result("stump", "random_forest", 0.99, {"n_estimators": 1, "max_depth": 1, "max_features": 1}),
               trial_result("lr1", "logreg", 0.98, {"C": 1.0, "max_iter": 1000}),
               trial_result("lr2", "logreg", 0.97, {"C": 0.1, "max_iter": 1000})]
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


def test_caruana_through_the_pipeline(ray_session, tmp_path):
    """tune.ensemble.method=caruana with CV and the portfolio: the decision is recorded with weights, a
    kept ensemble is what is registered, and it loads back and predicts."""
    from mlauto import context, train
    from mlauto.track import BundleLoader
    from tests.helpers import make_config

    cfg = make_config([f"root={tmp_path}", "models=fast", "name=caruana", "tune.ensemble.method=caruana",
                       "tune.ensemble.k=3", "tune.cv_folds=3", "tune.portfolio=2", "tune.num_samples=4",
                       "tune.refit=all", "tune.sample_sizes.fractions=[]"])
    result = train.train(cfg, {})
    decision = result.ensemble.summary()
    assert decision["method"] == "caruana" and "out of fold" in decision["reason"]
    assert {t.family for t in result.search.trials if t.status == "ok"} >= {"logreg", "hist_gb"}  # the portfolio
    if decision["kept"]:
        assert result.final.family == "ensemble" and sum(m["weight"] for m in decision["members"]) >= 2
        assert result.final.test_from == "train_val refit" and "test" in result.final.rows_seen
    loaded = BundleLoader(context.tracking_uri(cfg), context.model_name(cfg))(result.tracked.version)
    assert loaded.meta["family"] == result.final.family
    rows = result.splits.test[result.splits.features]
    assert (loaded.pipeline.predict(rows) == result.final.pipeline.predict(rows)).all()
