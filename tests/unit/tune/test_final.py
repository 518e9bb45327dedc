"""The final refit (tune.refit) without Ray: which rows the served model saw, where the test score comes
from, and early-stopped rounds scaled to the larger data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlauto.data import Splits
from mlauto.features import Preprocessor
from mlauto.models import FAMILIES
from mlauto.tune import fit_final
from mlauto.tune.metrics import evaluate


def _splits(n: int = 240, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                          "c": rng.choice(["x", "y", "z"], size=n)})
    noise = rng.normal(scale=1.5, size=n)  # noisy: a 1-NN model cannot be right on rows it never saw
    frame["y"] = (frame["a"] + frame["b"] + noise > 0).astype(int)
    a, b = int(0.6 * n), int(0.8 * n)
    return Splits(frame.iloc[:a].reset_index(drop=True), frame.iloc[a:b].reset_index(drop=True),
                  frame.iloc[b:].reset_index(drop=True), target="y")


def _prep(splits: Splits) -> Preprocessor:
    """Fitted on the training split, as prepare_stage leaves it."""
    return Preprocessor().fit(splits.train[splits.features], splits.train["y"])


def _accuracy(pipe, frame: pd.DataFrame) -> float:
    return evaluate(pipe, frame[["a", "b", "c"]], frame["y"].to_numpy(), "binary")["accuracy"]


# 1-nearest-neighbour memorizes what it was fitted on: accuracy 1.0 on exactly the rows it saw
ONE_NN = {"n_neighbors": 1}


@pytest.mark.parametrize("refit, seen", [("train", {"train"}), ("train_val", {"train", "val"}),
                                         ("all", {"train", "val", "test"})])
def test_the_served_model_saw_the_rows_refit_names_and_the_test_score_never_saw_test(refit, seen):
    splits = _splits()
    final = fit_final(_prep(splits), "knn", ONE_NN, splits, seed=0, task="binary", refit=refit)
    assert set(final.rows_seen) == seen
    assert sum(final.rows_seen.values()) == sum(len(getattr(splits, s)) for s in seen)
    for name in ("train", "val", "test"):
        memorized = _accuracy(final.pipeline, getattr(splits, name)) == 1.0
        assert memorized == (name in seen), name
    # the test estimate comes from a model that never saw the test rows, whatever was served
    assert final.test_metrics["accuracy"] < 1.0
    # val_metrics are the training-split fit's: the leaderboard's number, not a memorized 1.0
    assert final.val_metrics["accuracy"] < 1.0
    tags = final.lineage()
    assert tags["mlauto.refit"] == refit
    if refit == "all":
        assert final.test_from == "train_val refit"
        assert final.served_test_metrics["accuracy"] == 1.0  # reported beside it, marked as seen rows
        assert "mlauto.served_test_accuracy_seen_rows" in tags
    else:
        assert final.test_from == "served" and final.served_test_metrics is None
        assert final.test_metrics == pytest.approx(evaluate(final.pipeline, splits.test[["a", "b", "c"]],
                                                            splits.test["y"].to_numpy(), "binary"))


def test_refit_train_keeps_the_trial_fit_and_its_preprocessor():
    splits, prep = _splits(), Preprocessor()
    X = prep.fit_transform(splits.train[splits.features], splits.train["y"])
    final = fit_final(prep, "logreg", {}, splits, seed=0, X_train=X, refit="train")
    assert final.pipeline.named_steps["prep"] is prep
    assert final.rows_seen == {"train": len(splits.train)}
    refit = fit_final(prep, "logreg", {}, splits, seed=0, X_train=X, refit="train_val")
    assert refit.pipeline.named_steps["prep"] is not prep  # refitted on train+val, the given one untouched
    assert refit.val_metrics == pytest.approx(final.val_metrics)


def test_unknown_refit_fails_listing_the_valid_ones():
    with pytest.raises(ValueError, match="train, train_val, all"):
        fit_final(Preprocessor(), "logreg", {}, _splits(), seed=0, refit="everything")


def test_early_stopped_rounds_scale_with_the_rows():
    splits = _splits(600)
    fam = FAMILIES.get("hist_gb")()
    params = {"max_iter": 500, "early_stopping": True, "n_iter_no_change": 3, "learning_rate": 0.3}
    model = fam.build(params, seed=0).fit(splits.train[["a", "b"]], splits.train["y"])
    assert model.n_iter_ < 500  # it stopped early on this noisy target
    new, note = fam.refit_params(params, model, scale=1.5)
    assert new["max_iter"] == round(model.n_iter_ * 1.5) and new["early_stopping"] is False
    assert str(model.n_iter_) in note and "x1.50" in note
    full = fam.build(params, seed=0).set_params(max_iter=500, early_stopping=False)
    assert fam.refit_params(params, full.fit(splits.train[["a", "b"]], splits.train["y"]), 1.5) == (params, None)


def test_mlp_refit_trains_the_kept_epoch_count_scaled():
    fam = FAMILIES.get("mlp")()

    class Fitted:  # what the MLP leaves after fit: one record per epoch
        history_ = [{"epoch": e, "val_loss": v} for e, v in enumerate([0.9, 0.5, 0.4, 0.45, 0.6], start=1)]

    new, note = fam.refit_params({"max_epochs": 100, "patience": 10}, Fitted(), scale=1.25)
    assert new["max_epochs"] == 4 and new["patience"] == 4  # best epoch 3 x 1.25 -> 4
    assert "3" in note
