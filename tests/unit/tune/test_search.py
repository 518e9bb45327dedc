"""Search without Ray: grid values and caps, bayesopt bounds, run names, GPU requests, config checks.
The searches on Ray Tune (ASHA, failures, resume, GPU fallback): tests/integration/test_search.py."""

from __future__ import annotations


import pytest
from tests.helpers import HIST, LOGREG, MLP, make_config
from hydra.errors import ConfigCompositionException


from mlauto.errors import ConfigError, MlautoError
from mlauto.tune.search import search_run_name
from mlauto.tune.space import bayesopt_bounds, bayesopt_decode, grid_configs, grid_values, split_budget


# --- space translation (no Ray) ------------------------------------------------------------------------

def test_grid_values_discretise_each_param_type():
    assert grid_values({"type": "loguniform", "low": 0.01, "high": 100.0}, 5) == pytest.approx([0.01, 0.1, 1, 10, 100])
    assert grid_values({"type": "uniform", "low": 0.0, "high": 1.0}, 3) == [0.0, 0.5, 1.0]
    assert grid_values({"type": "int", "low": 1, "high": 3}, 5) == [1, 2, 3]
    assert grid_values({"type": "logint", "low": 1, "high": 100}, 3) == [1, 10, 100]
    assert grid_values({"type": "choice", "values": ["a", "b"]}, 7) == ["a", "b"]


def test_grid_size_is_capped_with_a_clear_error():
    big = {"random_forest": {"space": {p: {"type": "int", "low": 1, "high": 100} for p in "abcd"}}}
    with pytest.raises(MlautoError, match=r"grid has 10000 points \(random_forest: 10000\).*max_grid_size=1000"):
        grid_configs(big, 10, 1000)


def test_bayesopt_bounds_and_decoding():
    space = {**HIST["space"], **LOGREG["space"]}
    bounds = bayesopt_bounds(space)
    assert set(bounds) == {"C", "max_leaf_nodes"}  # the choice param is not a GP dimension
    assert bounds["C"] == pytest.approx((-2.0, 2.0))  # log10 units
    params = bayesopt_decode(space, {"C": 1.0, "max_leaf_nodes": 16.4})
    assert params == {"C": pytest.approx(10.0), "max_leaf_nodes": 16, "learning_rate": 0.1}
    assert split_budget(7, ["a", "b", "c"]) == {"a": 3, "b": 2, "c": 2}


def test_bayesopt_rejects_a_family_without_numeric_params():
    from mlauto.tune.space import PerFamilyBayesOpt

    with pytest.raises(MlautoError, match="mlp has only choice params"):
        choices_only = {"space": {"hidden": {"type": "choice", "values": [8, 16]}}, "fixed": {}}
        PerFamilyBayesOpt({"mlp": choices_only, "logreg": LOGREG}, 4, metric="score", mode="max", seed=0)


def test_run_names_are_stable_only_with_resume():
    stable = search_run_name("exp", resume=True, run_name="a", fingerprint="0123456789abcdef", seed=3)
    assert stable == "exp-a-0123456789ab-s3"
    assert search_run_name("exp", resume=True, run_name="a", fingerprint="0123456789abcdef", seed=3) == stable
    assert search_run_name("exp", resume=True, fingerprint="f", seed=4) != stable  # a retrain (new seed): fresh
    assert search_run_name("exp", resume=False).startswith("exp-2")


def test_config_validation_names_allowed_values():
    cfg = make_config(["search=grid", "scheduler=asha"])
    assert cfg.search.algorithm == "grid" and cfg.scheduler.name == "asha" and cfg.scheduler.grace_period == 5
    assert make_config(["search=bayesopt"]).search.algorithm == "bayesopt"
    with pytest.raises(ConfigCompositionException) as exc:  # Enums of the schema: Hydra refuses them
        make_config(["search.algorithm=hyperband"])
    assert "expected one of [optuna, random, grid, bayesopt]" in str(exc.value.__cause__)
    with pytest.raises(ConfigCompositionException) as exc:
        make_config(["scheduler.name=pbt"])
    assert "expected one of [fifo, asha]" in str(exc.value.__cause__) and "scheduler.name" in str(exc.value.__cause__)
    with pytest.raises(ConfigError, match="scheduler.max_t"):
        make_config(["scheduler=asha", "scheduler.max_t=2"])
    with pytest.raises(ConfigError, match="tune.gpus_per_trial"):
        make_config(["tune.gpus_per_trial=-1"])
    with pytest.raises(ConfigError, match="search.grid_points_per_param"):
        make_config(["search=grid", "search.grid_points_per_param=1"])


# --- real searches ---------------------------------------------------------------------------------------


def test_gpu_trials_request_a_gpu_only_for_the_mlp():
    from mlauto.tune.search import TrialResources, gpu_families

    res = TrialResources(1.0, 0.5, gpu_families({"mlp": MLP, "logreg": LOGREG}))
    assert res({"family": "mlp"}).required_resources == {"CPU": 1.0, "GPU": 0.5}
    assert res({"family": "logreg"}).required_resources == {"CPU": 1.0}


def test_trial_cap_is_num_samples_or_none_under_a_time_budget():
    from mlauto.config.schema import DEFAULT_TRIALS, TuneConf
    from mlauto.tune.search import trial_cap

    assert trial_cap(TuneConf()) == DEFAULT_TRIALS  # no budget: the old 16
    assert trial_cap(TuneConf(time_budget_s=60)) == -1  # a budget alone: Tune runs until it, no cap
    assert trial_cap(TuneConf(time_budget_s=60, num_samples=5)) == 5  # both: whichever ends first
    assert make_config(["tune.time_budget_s=60"]).tune.num_samples is None


def test_progress_counts_budget_cut_trials_as_stopped():
    from types import SimpleNamespace as Trial

    from mlauto.tune.progress import SearchProgress

    progress = SearchProgress(-1, label="accuracy")
    trials = [Trial(trial_id="a", status="TERMINATED", last_result={"score": 0.9}),
              Trial(trial_id="b", status="RUNNING", last_result={}),
              Trial(trial_id="c", status="ERROR", last_result={})]
    progress.on_trial_result(0, trials, trials[0], {"score": 0.9})
    progress.on_experiment_end(trials)
    counts = progress.counts()
    assert (counts["done"], counts["failed"], counts["stopped"]) == (1, 1, 1)
    assert counts["first_result_s"] is not None
    assert progress.line().startswith("trials 1/? done, 0 running, 1 failed, 1 stopped by the budget; best accuracy 0.9000")


def test_a_budget_that_ends_before_any_report_still_scores_one_quick_config():
    import numpy as np

    from mlauto.tune.cv import cv_data
    from mlauto.tune.search import SearchRun, _fallback_trial

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] > 0).astype(int)
    holdout = (X[:90], y[:90], X[90:], y[90:])
    run = SearchRun("t", "/tmp", "accuracy", "max", 0)
    trial = _fallback_trial(holdout, "binary", {"mlp": MLP, "logreg": LOGREG}, run)
    assert (trial.status, trial.family, trial.params) == ("ok", "logreg", {"max_iter": 500})
    assert trial.score > 0.8
    cv = _fallback_trial(cv_data(holdout, "binary", 3, 0), "binary", {"logreg": LOGREG}, run)
    assert cv.metrics["folds"] == 3 and cv.score > 0.8
