import numpy as np
import pandas as pd
import pytest

from mlauto.errors import ConfigError, DataError
from mlauto.features import Preprocessor
from mlauto.models import FAMILIES, TorchMLPClassifier, build_estimator


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "z": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n)})
    frame["y"] = np.where(x + (frame["c"] == "a") > 0.3, "yes", "no")
    return frame


def test_preprocessor_learns_from_train_only():
    train = pd.DataFrame({"x": [1.0, 2.0, np.nan, 3.0], "c": ["a", "b", None, "a"]})
    other = pd.DataFrame({"x": [np.nan, 100.0], "c": ["zzz", "b"]})
    prep = Preprocessor().fit(train)
    out = prep.transform(other)
    assert out[0, prep.feature_names_out_.index("x")] == 2.0  # the train median, not other's
    assert prep.feature_names_out_[:1] == ["x"]
    assert out.shape == (2, len(prep.feature_names_out_))
    # the unseen category "zzz" encodes to no known column rather than failing
    onehot = [i for i, n in enumerate(prep.feature_names_out_) if n.startswith("c_")]
    assert out[0, onehot].sum() == 0 and out[1, onehot].sum() == 1


def test_schema_records_types_ranges_and_categories():
    prep = Preprocessor().fit(pd.DataFrame({"x": [1.0, 5.0], "n": [1, 2], "c": ["a", None]}))
    schema = {c["name"]: c for c in prep.schema_}
    assert schema["x"]["type"] == "number" and schema["x"]["min"] == 1.0 and schema["x"]["max"] == 5.0
    assert schema["n"]["type"] == "integer"
    assert schema["c"]["type"] == "string" and schema["c"]["categories"] == ["a"] and schema["c"]["nullable"]


def test_missing_column_at_transform_is_named():
    prep = Preprocessor().fit(pd.DataFrame({"x": [1.0, 2.0], "w": [3.0, 4.0]}))
    with pytest.raises(DataError, match=r"\['w'\]"):
        prep.transform(pd.DataFrame({"x": [1.0]}))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_fits_and_predicts(family):
    frame = _frame()
    prep = Preprocessor().fit(frame.drop(columns="y"))
    X, y = prep.transform(frame.drop(columns="y")), frame["y"].to_numpy()
    params = {"max_epochs": 20} if family == "mlp" else {}
    est = build_estimator(family, params, seed=0).fit(X[:150], y[:150])
    proba = est.predict_proba(X[150:])
    assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(est.predict(X[150:])) <= {"yes", "no"}
    assert (est.predict(X[150:]) == y[150:]).mean() > 0.7


def test_unknown_family_lists_valid_ones():
    with pytest.raises(ConfigError) as exc:
        build_estimator("catboost", {}, 0)
    assert exc.value.key == "families" and "hist_gb" in str(exc.value) and "mlp" in str(exc.value)


def test_mlp_is_reproducible_and_stops_early():
    frame = _frame(300)
    X = Preprocessor().fit(frame.drop(columns="y")).transform(frame.drop(columns="y"))
    y = frame["y"].to_numpy()
    a = TorchMLPClassifier(max_epochs=200, patience=5, seed=3).fit(X, y)
    b = TorchMLPClassifier(max_epochs=200, patience=5, seed=3).fit(X, y)
    assert np.allclose(a.predict_proba(X), b.predict_proba(X))
    assert a.n_epochs_ < 200 and len(a.history_) == a.n_epochs_
    assert a.best_val_loss_ == min(h["val_loss"] for h in a.history_)
