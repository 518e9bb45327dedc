"""Native categorical splits: with ``features=native`` the preprocessor emits ordinal codes, the
search gives their column numbers to the families that split categories natively (LightGBM, XGBoost),
and those models really split them as categories, which beats reading the codes as numbers on a
category whose effect has no order. Unseen and unknown categories are served, as missing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlauto.context import build_config
from mlauto.features import Preprocessor
from mlauto.models import build_estimator, plan_families, point_categorical

SMALL = {"lightgbm": {"n_estimators": 400, "learning_rate": 0.1, "num_leaves": 4, "min_child_samples": 5,
                      "verbose": -1, "n_jobs": 1},
         "xgboost": {"n_estimators": 400, "learning_rate": 0.1, "max_depth": 2, "n_jobs": 1, "tree_method": "hist"}}


def _frame(n: int = 3000, levels: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.integers(0, levels, n)
    effect = rng.normal(size=levels)  # no order: neighbouring codes have unrelated effects
    x = rng.normal(size=n)
    y = effect[city] + 0.5 * x + rng.normal(scale=0.5, size=n) > 0
    return pd.DataFrame({"city": [f"c{c:02d}" for c in city], "x": x, "y": np.where(y, "yes", "no")})


def _prep(frame: pd.DataFrame) -> tuple[Preprocessor, np.ndarray]:
    steps = [dict(s) for s in build_config(["features=native"]).features.steps]
    prep = Preprocessor(steps=steps)
    return prep, prep.fit_transform(frame[["city", "x"]], frame["y"])


def test_the_native_features_mark_the_codes_categorical():
    frame = _frame()
    prep, X = _prep(frame)
    assert prep.feature_names_out_ == ["x", "city"] and prep.category_codes_ == [1]
    assert set(np.unique(X[:, 1])) == set(range(40))
    # one-hot columns are discrete (the drift detectors test them as categories) but not codes to split
    onehot = Preprocessor().fit(frame[["city", "x"]], frame["y"])
    assert len(onehot.categorical_features_) == 40 and onehot.category_codes_ == []


@pytest.mark.parametrize("family", ["lightgbm", "xgboost"])
def test_categorical_splits_beat_codes_read_as_numbers(family):
    frame = _frame()
    train, val, test = frame.iloc[:1500], frame.iloc[1500:2000], frame.iloc[2000:]
    prep, X = _prep(train)
    Xv, Xt = prep.transform(val[["city", "x"]]), prep.transform(test[["city", "x"]])
    y, y_test = train["y"].to_numpy(), test["y"].to_numpy()
    scores = {}
    for cats in ((), tuple(prep.category_codes_)):  # the same 20 rounds of 4-leaf trees each way
        model = build_estimator(family, {**SMALL[family], "n_estimators": 20, "categorical_columns": cats}, seed=0)
        scores[bool(cats)] = (model.fit(X, y).predict(Xt) == y_test).mean()
    if family == "lightgbm":
        splits = [node for tree in model.booster_.dump_model()["tree_info"] for node in _nodes(tree["tree_structure"])]
        assert any(node.get("decision_type") == "==" for node in splits)  # a categorical split
    else:
        assert model.get_booster().trees_to_dataframe()["Category"].notna().any()
    # one categorical split groups many cities; on codes read as numbers it takes a split per run of codes
    assert scores[True] > scores[False] + 0.05, scores
    # early-stopped on validation, as in a trial; unknown and missing cities are served (as missing)
    model = build_estimator(family, {**SMALL[family], "categorical_columns": prep.category_codes_}, seed=0)
    model.fit(X, y, validation=(Xv, val["y"].to_numpy()))
    assert model.stopped_early_ and (model.predict(Xt) == y_test).mean() > 0.8
    unseen = pd.DataFrame({"city": ["nowhere", None], "x": [0.1, -0.2]})
    assert set(model.predict(prep.transform(unseen))) <= {"yes", "no"}


def _nodes(node: dict):
    yield node
    for side in ("left_child", "right_child"):
        if side in node:
            yield from _nodes(node[side])


def test_only_native_families_get_the_categorical_columns():
    conf = {name: {"space": {}, "fixed": {"n_jobs": 1}} for name in ("lightgbm", "xgboost", "logreg", "hist_gb")}
    planned = plan_families(conf, "binary", n_rows=2000, n_features=6, categorical=[4, 5])
    assert planned["lightgbm"]["fixed"]["categorical_columns"] == [4, 5]
    assert planned["xgboost"]["fixed"]["categorical_columns"] == [4, 5]
    assert "categorical_columns" not in planned["logreg"]["fixed"] and "categorical_columns" not in planned["hist_gb"]["fixed"]
    assert "categorical_columns" not in plan_families(conf, "binary", 2000, 6)["lightgbm"]["fixed"]  # one-hot: none


def test_a_refit_preprocessor_renumbers_the_columns():
    model = build_estimator("xgboost", {**SMALL["xgboost"], "categorical_columns": [3]}, seed=0)
    assert point_categorical(model, [1, 2]).get_params()["categorical_columns"] == (1, 2)
    plain = build_estimator("logreg", {}, seed=0)
    assert point_categorical(plain, [1]) is plain  # a family without native categoricals is left alone


def test_xgboost_is_opt_in():
    assert "xgboost" not in build_config([]).families  # models=all composes it; the search leaves it out
    assert list(build_config(["models.include=[xgboost,lightgbm]"]).families) == ["xgboost", "lightgbm"]
