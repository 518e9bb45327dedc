"""Caruana's ensemble selection (tune.ensemble.method=caruana) without Ray: the greedy weights, the
out-of-fold choice, and the refit of the kept members."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from mlauto.data import Splits
from mlauto.features import Preprocessor
from mlauto.models.ensemble import WeightedEnsemble, caruana_weights
from mlauto.tune import caruana
from mlauto.tune.cv import cv_data
from mlauto.tune.search import TrialResult


def test_greedy_weights_mix_two_complementary_members():
    y = np.array([0.0, 0.0, 1.0, 1.0])
    a = np.array([0.0, 0.0, 2.0, 2.0])  # right on the ordering, twice too large
    b = np.array([0.0, 0.0, 0.0, 0.0])
    bad = np.array([5.0, 5.0, 5.0, 5.0])

    def neg_mse(out):
        return -float(np.mean((out - y) ** 2))

    w = caruana_weights([a, b, bad], neg_mse, "max", rounds=10)
    assert w[2] == 0 and w[0] == w[1] > 0  # the mean of a and b is exactly y
    w_min = caruana_weights([a, b, bad], lambda o: -neg_mse(o), "min", rounds=10)
    assert (w_min == w).all()
    only = caruana_weights([b, bad], neg_mse, "max", rounds=10)
    assert only.tolist() == [1.0, 0.0]  # nothing improves on the best alone: it stops there


def _splits(n: int = 600, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], size=n)})
    frame["y"] = ((frame["a"] > 0) ^ (frame["b"] * (frame["c"] == "x") > 0.5) | (rng.random(n) < 0.1)).astype(int)
    a, b = int(0.6 * n), int(0.8 * n)
    return Splits(frame.iloc[:a].reset_index(drop=True), frame.iloc[a:b].reset_index(drop=True),
                  frame.iloc[b:].reset_index(drop=True), target="y")


def _trials() -> list[TrialResult]:
    return [TrialResult("t1", "random_forest", {"n_estimators": 30, "max_depth": 6, "min_samples_leaf": 2}, {}, "ok"),
            TrialResult("t2", "logreg", {"C": 1.0}, {}, "ok"),
            TrialResult("t3", "lightgbm", {"learning_rate": 0.1, "num_leaves": 8, "n_estimators": 500,
                                           "verbose": -1, "n_jobs": 1}, {}, "ok")]


@pytest.mark.parametrize("cv", [True, False])
def test_selection_is_greedy_on_log_loss_out_of_fold_and_keeps_only_a_strict_win(cv):
    splits = _splits()
    prep = Preprocessor().fit(splits.train[splits.features], splits.train["y"])
    holdout = (prep.transform(splits.train[splits.features]), splits.train["y"].to_numpy(),
               prep.transform(splits.val[splits.features]), splits.val["y"].to_numpy())
    data = cv_data(holdout, "binary", 3, seed=0) if cv else holdout
    chosen = caruana.select(_trials(), data, "accuracy", "max", "binary", seed=0)
    assert chosen["loss"] == "log_loss" and len(chosen["members"]) == 3 and sum(chosen["weights"]) >= 1
    assert chosen["best_single_score"] == max(m["val_score"] for m in chosen["members"])
    assert chosen["ensemble_loss"] <= chosen["best_single_loss"]  # greedy starts from the best single's loss
    used = sum(w > 0 for w in chosen["weights"])
    assert (used > 1) == (chosen["ensemble_loss"] < chosen["best_single_loss"])  # an addition must improve it
    lgbm = chosen["members"][2]
    assert lgbm["stopped"] is not None and 0 < lgbm["stopped"] < 500  # early stopping on the held-out rows
    decision, kept = caruana.choose(_trials(), data, "accuracy", "max", "binary", seed=0)
    assert decision.kept == (used > 1) == (kept is not None)
    assert "log_loss" in decision.reason and "accuracy" in decision.reason
    gain = chosen["best_single_loss"] - chosen["ensemble_loss"]
    asked, _ = caruana.choose(_trials(), data, "accuracy", "max", "binary", 0, min_gain=gain)  # a margin it misses
    assert not asked.kept
    forced, _ = caruana.choose(_trials(), data, "accuracy", "max", "binary", 0, min_gain=-1.0)  # any result is kept
    assert forced.kept
    single, none = caruana.choose(_trials()[:1], data, "accuracy", "max", "binary", seed=0)
    assert not single.kept and none is None


def test_greedy_selection_follows_a_smooth_loss_for_classes_and_the_metric_for_regression():
    assert caruana.greedy_loss("binary", "accuracy") == "log_loss" == caruana.greedy_loss("multiclass", "f1")
    assert caruana.greedy_loss("regression", "r2") == "r2"
    # Accuracy stalls at ties where log loss still sees the gain: two members right on different rows
    y = np.array([0, 0, 1, 1])
    a = np.array([[0.9, 0.1], [0.9, 0.1], [0.45, 0.55], [0.6, 0.4]])  # wrong on row 4
    b = np.array([[0.9, 0.1], [0.6, 0.4], [0.1, 0.9], [0.45, 0.55]])  # right everywhere, barely on row 4
    c = np.array([[0.4, 0.6], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])  # wrong on row 1

    def metric(key):
        return lambda out: caruana.evaluate(caruana._Outputs(out, np.array([0, 1])), None, y, "binary")[key]

    by_accuracy = caruana_weights([b, a, c], metric("accuracy"), "max", rounds=10)
    by_loss = caruana_weights([b, a, c], metric("log_loss"), "min", rounds=10)
    assert by_accuracy.tolist() == [1, 0, 0]  # b is perfect: no addition can raise accuracy, it stops
    assert by_loss[0] >= 1 and by_loss.sum() > 1  # log loss still improves by mixing


@pytest.mark.parametrize("refit", ["train_val", "all"])
def test_the_kept_members_are_refit_and_the_test_score_never_saw_test(refit):
    splits = _splits()
    prep = Preprocessor().fit(splits.train[splits.features], splits.train["y"])
    holdout = (prep.transform(splits.train[splits.features]), splits.train["y"].to_numpy(),
               prep.transform(splits.val[splits.features]), splits.val["y"].to_numpy())
    chosen = caruana.select(_trials(), cv_data(holdout, "binary", 3, seed=0), "accuracy", "max", "binary", seed=0)
    chosen["weights"] = [2.0, 0.0, 1.0]  # force a mix: the refit must drop the zero-weight member
    final = caruana.caruana_final(prep, chosen, splits, seed=0, task="binary", refit=refit)
    model = final.pipeline.named_steps["model"]
    assert isinstance(model, WeightedEnsemble) and list(model.weights) == [2.0, 1.0]
    assert [m["family"] for m in final.params["members"]] == ["random_forest", "lightgbm"]
    lgbm, rows = chosen["members"][2], sum(final.rows_seen.values())  # rounds scaled to the served rows
    assert model.estimators_[1].n_estimators == max(1, round(lgbm["stopped"] * rows / lgbm["fit_rows"]))
    assert final.family == "ensemble" and ("test" in final.rows_seen) == (refit == "all")
    assert final.test_from == ("train_val refit" if refit == "all" else "served")
    proba = final.pipeline.predict_proba(splits.test[splits.features])
    assert proba.shape == (len(splits.test), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert 0.5 < final.test_metrics["accuracy"] <= 1.0
    again = pickle.loads(pickle.dumps(final.pipeline))  # it is registered and served like any model
    assert (again.predict(splits.test[splits.features]) == final.pipeline.predict(splits.test[splits.features])).all()


def test_candidates_take_each_familys_best_first():
    from mlauto.tune.search import SearchResult

    def trial(i, family, score):
        return TrialResult(f"t{i}", family, {"i": i}, {"score": score}, "ok")

    trials = [trial(1, "lightgbm", 0.90), trial(2, "lightgbm", 0.89), trial(3, "lightgbm", 0.88),
              trial(4, "logreg", 0.80), trial(5, "random_forest", 0.85)]
    search = SearchResult(trials, trials[0], "accuracy", "max", "")
    assert [t.trial_id for t in caruana.candidates(search, 3)] == ["t1", "t5", "t4"]
    assert [t.trial_id for t in caruana.candidates(search, 5)] == ["t1", "t2", "t3", "t5", "t4"]
    assert [t.trial_id for t in caruana.candidates(search, 2)] == ["t1", "t5"]
