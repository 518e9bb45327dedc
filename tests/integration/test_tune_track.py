import math

import numpy as np
import pytest
from tests.helpers import TUNE_FAMILIES, search
from mlflow.tracking import MlflowClient

from mlauto import context
from mlauto.errors import MlautoError, ModelNotFoundError
from mlauto.track import CHAMPION, BundleLoader


def _data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X[:160], y[:160], X[160:], y[160:]


def test_search_runs_every_trial_and_picks_the_best(ray_session, tmp_path):
    result = search(_data(), TUNE_FAMILIES, metric="accuracy", mode="max", num_samples=5, algorithm="optuna",
                        seed=0, storage_path=str(tmp_path), name="t")
    assert len(result.trials) == 5 and all(t.status == "ok" for t in result.trials)
    assert result.best.score == max(t.score for t in result.trials)
    board = result.leaderboard()
    assert board["score"].tolist() == sorted(board["score"], reverse=True)
    assert all(t.metrics["train_seconds"] > 0 for t in result.trials)


def test_failing_trials_are_marked_and_the_search_goes_on(ray_session, tmp_path):
    families = {**TUNE_FAMILIES, "logreg": {"space": TUNE_FAMILIES["logreg"]["space"], "fixed": {"no_such_arg": 1}}}
    result = search(_data(), families, metric="accuracy", mode="max", num_samples=6, algorithm="random",
                        seed=3, storage_path=str(tmp_path), name="t", max_failures=0)
    failed = [t for t in result.trials if t.status == "failed"]
    assert len(result.trials) == 6 and failed and all(t.family == "logreg" for t in failed)
    assert all("no_such_arg" in t.error for t in failed)
    assert result.best.family == "hist_gb" and not math.isnan(result.best.score)


def test_all_trials_failing_is_a_clear_error(ray_session, tmp_path):
    broken = {"logreg": {"space": TUNE_FAMILIES["logreg"]["space"], "fixed": {"no_such_arg": 1}}}
    with pytest.raises(MlautoError, match="all 2 trial"):
        search(_data(), broken, metric="accuracy", mode="max", num_samples=2, algorithm="random", seed=0,
                   storage_path=str(tmp_path), name="t", max_failures=0)


def test_mlflow_holds_every_trial_and_the_registered_champion(trained):
    cfg, result = trained
    client = MlflowClient(context.tracking_uri(cfg))
    exp = client.get_experiment_by_name(cfg.name)
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{result.tracked.run_id}'")
    assert len(children) == len(result.search.trials) == cfg.tune.num_samples
    for run in children:
        assert run.data.params["family"] in cfg.families
        assert "train_seconds" in run.data.metrics and "score" in run.data.metrics
    parent = client.get_run(result.tracked.run_id)
    assert parent.data.tags["mlauto.data_fingerprint"] == result.snapshot.fingerprint
    assert parent.data.params["family"] == result.final.family
    metric = result.search.metric  # tune.metric=auto, resolved for the binary target
    assert metric == "roc_auc" and parent.data.params["metric"] == metric and parent.data.params["task"] == "binary"
    assert parent.data.metrics[f"test_{metric}"] == pytest.approx(result.final.test_metrics[metric])
    mv = client.get_model_version_by_alias(context.model_name(cfg), CHAMPION)
    assert str(mv.version) == result.tracked.version and mv.run_id == result.tracked.run_id


def test_best_trial_score_matches_the_refit(trained):
    cfg, result = trained
    assert result.final.val_metrics[result.search.metric] == pytest.approx(result.search.best.score, abs=1e-9)


def test_bundle_round_trip_predicts_the_same(trained):
    cfg, result = trained
    bundle = context.loader_for(cfg)()
    X = result.splits.test[result.splits.features]
    assert np.allclose(bundle.pipeline.predict_proba(X), result.final.pipeline.predict_proba(X))
    assert bundle.meta["fingerprint"] == result.snapshot.fingerprint
    assert [c["name"] for c in bundle.schema] == result.splits.features
    assert bundle.reference.shape[1] == len(bundle.meta["feature_names"])


def test_missing_model_says_what_to_run(trained):
    cfg, _ = trained
    with pytest.raises(ModelNotFoundError, match="run the tune stage first"):
        BundleLoader(context.tracking_uri(cfg), "no-such-model")()


def test_warm_start_evaluates_the_known_config(ray_session, tmp_path):
    from mlauto.tune import warm_start_point

    point = warm_start_point(TUNE_FAMILIES, "logreg", {"C": 0.123, "max_iter": 500})
    assert point == {"family": "logreg", "logreg.C": 0.123}
    assert warm_start_point(TUNE_FAMILIES, "mlp", {"hidden": 8}) is None
    result = search(_data(), TUNE_FAMILIES, metric="accuracy", mode="max", num_samples=3, algorithm="optuna",
                        seed=0, storage_path=str(tmp_path), name="t", points_to_evaluate=[point])
    assert any(t.family == "logreg" and t.params["C"] == 0.123 for t in result.trials)
