"""Feature steps and selection: fitted on train only, named in config, refused clearly when wrong.
The same features at training and serving: tests/integration/test_features.py."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from tests.helpers import make_config, mixed_frame

from mlauto.errors import ConfigError, DataError
from mlauto.features import Preprocessor, selector_options, transform_options


def ratio(frame: pd.DataFrame, eps: float = 1.0) -> pd.DataFrame:
    """A user feature function (used by dotted path below)."""
    return pd.DataFrame({"a_per_b": frame["a"] / (frame["b"] + eps)})


def dummies(frame: pd.DataFrame) -> pd.DataFrame:
    """A user function whose output columns depend on the rows: unusable for serving."""
    return pd.get_dummies(frame).astype(float)


# -- defaults and config -----------------------------------------------------------------------


def test_default_config_steps_reproduce_the_old_preprocessing():
    frame, y = mixed_frame()
    frame = frame.drop(columns="ts")
    cfg = make_config()
    configured = Preprocessor(steps=cfg.features.steps, selection=cfg.features.selection).fit(frame, y)
    default = Preprocessor().fit(frame)
    assert configured.feature_names_out_ == default.feature_names_out_
    assert configured.feature_names_out_[:2] == ["x", "amount"]  # numerics first, then one-hot, as before
    assert np.array_equal(configured.transform(frame), default.transform(frame))
    # prepare.numeric_impute / max_categories still feed the default steps
    mean_cfg = make_config(["prepare.numeric_impute=mean", "prepare.max_categories=7"])
    assert mean_cfg.features.steps[0]["strategy"] == "mean" and mean_cfg.features.steps[1]["max_categories"] == 7


def test_a_model_saved_before_feature_steps_still_transforms():
    """Registered champions pickled with the old Preprocessor (a ColumnTransformer inside) keep serving."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer

    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0]})
    old = ColumnTransformer([("num", SimpleImputer(strategy="median"), ["x"])]).fit(frame)
    prep = Preprocessor.__new__(Preprocessor)
    prep.__setstate__({"numeric_impute": "median", "max_categories": 50, "columns_": ["x"], "transformer_": old,
                       "feature_names_out_": ["x"]})
    assert prep.transform(frame)[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_rich_config_composes_and_fits():
    cfg = make_config(["features=rich"])
    frame, y = mixed_frame()
    prep = Preprocessor(steps=cfg.features.steps, selection=cfg.features.selection).fit(frame, y)
    assert {"ts_year", "ts_month", "ts_dayofweek", "city", "color_red"} <= set(prep.transformed_names_)
    assert prep.transform(frame).shape == (len(frame), len(prep.feature_names_out_))


@pytest.mark.parametrize("override, key, listed", [
    ("features.steps=[{name: bucketize}]", "features.steps[0].name", "clip, datetime, function, impute"),
    ("features.steps=[{name: log, base: 2}]", "features.steps[0].base", "negative"),
    ("features.steps=[{name: scale, columns: numerics}]", "features.steps[0].columns", "numeric, categorical"),
    ("features.selection=[{method: chi2, k: 3}]", "features.selection[0].method", "model, mutual_info, variance"),
    ("features.selection=[{method: model, top: 3}]", "features.selection[0].top", "estimator"),
    ("features.selection=[{method: mutual_info}]", "features.selection[0].k", "threshold"),
    ("features.selection=[{method: variance, k: 0}]", "features.selection[0].k", "integer >= 1"),
    ("features.steps=[{name: function, path: no_such_pkg.fn}]", "features.steps[0].path", "No module named"),
])
def test_bad_feature_config_names_the_key_and_the_allowed_values(override, key, listed):
    with pytest.raises(ConfigError) as exc:
        make_config([override])
    assert exc.value.key == key and listed in str(exc.value)


def test_library_refuses_unknown_names_and_options_too():
    frame, y = mixed_frame()
    with pytest.raises(ConfigError, match="allowed: clip, datetime, function"):
        Preprocessor(steps=[{"name": "nope"}]).fit(frame, y)
    with pytest.raises(ConfigError, match=r"features.steps\[0\].bogus"):
        Preprocessor(steps=[{"name": "scale", "bogus": 1}]).fit(frame, y)
    assert "quantiles" in transform_options()["clip"] and "estimator" in selector_options()["model"]


# -- transforms ----------------------------------------------------------------------------------


def test_numeric_steps_learn_from_train_only():
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, np.nan, 4.0, 100.0]})
    prep = Preprocessor(steps=[{"name": "clip", "quantiles": [0.0, 0.8]}, {"name": "impute", "strategy": "median"},
                               {"name": "scale"}]).fit(train)
    clipped = train["a"].clip(upper=train["a"].quantile(0.8))
    filled = clipped.fillna(clipped.median())
    mean, std = filled.mean(), filled.std(ddof=0)
    new = pd.DataFrame({"a": [np.nan, 1000.0, 2.0]})
    expected = (np.array([clipped.median(), clipped.max(), 2.0]) - mean) / std
    assert np.allclose(prep.transform(new)[:, 0], expected)
    assert abs(prep.transform(train)[:, 0].mean()) < 1e-12  # scaled with train's own mean


def test_fixed_clip_and_log():
    frame = pd.DataFrame({"a": [-5.0, 0.0, 3.0, 50.0]})
    clip = Preprocessor(steps=[{"name": "clip", "lower": 0.0, "upper": 10.0}]).fit(frame)
    assert clip.transform(frame)[:, 0].tolist() == [0.0, 0.0, 3.0, 10.0]
    with pytest.raises(DataError, match=r"\['a'\] hold negatives.*negative: clip"):
        Preprocessor(steps=[{"name": "log"}]).fit(frame)
    logged = Preprocessor(steps=[{"name": "log", "negative": "clip"}]).fit(frame)
    assert np.allclose(logged.transform(frame)[:, 0], np.log1p([0.0, 0.0, 3.0, 50.0]))
    positive = Preprocessor(steps=[{"name": "log"}]).fit(frame.abs())
    with pytest.raises(DataError, match="negatives"):  # a negative at serving is refused the same way
        positive.transform(pd.DataFrame({"a": [-1.0]}))


def test_onehot_and_ordinal_handle_unseen_and_missing_categories():
    train = pd.DataFrame({"c": ["a", "b", None, "a"]})
    new = pd.DataFrame({"c": ["zzz", "b", None]})
    onehot = Preprocessor(steps=[{"name": "onehot"}]).fit(train)
    assert onehot.feature_names_out_ == ["c___missing__", "c_a", "c_b"]
    assert onehot.transform(new).tolist() == [[0, 0, 0], [0, 0, 1], [1, 0, 0]]
    ordinal = Preprocessor(steps=[{"name": "ordinal"}]).fit(train)
    assert ordinal.transform(new)[:, 0].tolist() == [-1.0, 2.0, 0.0]  # sorted: __missing__, a, b
    assert onehot.categorical_features_ == [0, 1, 2] and ordinal.categorical_features_ == [0]


def test_target_encoding_is_cross_fitted_and_needs_the_target():
    frame, y = mixed_frame(600)
    steps = [{"name": "target", "columns": "categorical", "min_unique": 10}, {"name": "onehot"},
             {"name": "impute", "columns": "numeric"}, {"name": "datetime", "columns": ["ts"]}]
    prep = Preprocessor(steps=steps)
    cross = prep.fit_transform(frame, y)
    full = prep.transform(frame)
    col = prep.feature_names_out_.index("city")  # only the high-cardinality column is target-encoded
    assert "color_red" in prep.feature_names_out_
    assert not np.allclose(cross[:, col], full[:, col])  # training rows were encoded by other folds
    odd = pd.Series(frame["city"]).str[-1].astype(int) % 2 == 1
    assert full[odd.to_numpy(), col].mean() > full[~odd.to_numpy(), col].mean() + 0.2
    assert np.array_equal(prep.transform(frame), full)  # transform is deterministic
    with pytest.raises(DataError, match=r"needs the target: fit the Preprocessor with \(X, y\)"):
        Preprocessor(steps=steps).fit(frame)


def test_datetime_parts_from_datetimes_and_from_strings_agree():
    stamps = pd.Series(pd.to_datetime(["2024-03-05 14:00", "2023-12-31 23:30", None]))
    prep = Preprocessor(steps=[{"name": "datetime", "parts": ["year", "month", "day", "dayofweek", "hour"]}])
    prep.fit(pd.DataFrame({"t": stamps}))
    assert prep.feature_names_out_ == ["t_year", "t_month", "t_day", "t_dayofweek", "t_hour"]
    out = prep.transform(pd.DataFrame({"t": stamps}))
    assert out[0].tolist() == [2024, 3, 5, 1, 14] and out[1].tolist() == [2023, 12, 31, 6, 23]
    assert np.isnan(out[2]).all()
    arrow = pd.DataFrame({"t": stamps.astype("timestamp[s][pyarrow]")})  # as a Parquet snapshot loads it
    assert np.array_equal(Preprocessor(steps=[{"name": "datetime"}]).fit(arrow).transform(arrow), out, equal_nan=True)
    as_text = pd.DataFrame({"t": ["2024-03-05 14:00:00", "2023-12-31T23:30:00", None]})  # what a request sends
    assert np.array_equal(prep.transform(as_text), out, equal_nan=True)
    named = Preprocessor(steps=[{"name": "datetime", "columns": ["t"]}]).fit(as_text)  # a string column by name
    assert np.array_equal(named.transform(as_text), out, equal_nan=True)
    found = Preprocessor(steps=[{"name": "datetime"}, {"name": "onehot"}])
    found.fit(as_text.assign(code=["2024", "7", None]))
    assert found.steps_[0][0] == ["t"]  # the selector finds ISO text (CSV readers leave it so), not digits
    zoned = pd.DataFrame({"t": ["2024-03-05T16:00:00+02:00", "2024-03-05T14:00:00Z", None]})
    assert np.array_equal(prep.transform(zoned)[:2], np.array([out[0], out[0]]))  # offsets count, in UTC
    with pytest.raises(DataError, match="'t' holds no parseable date"):
        Preprocessor(steps=[{"name": "datetime", "columns": ["t"]}]).fit(pd.DataFrame({"t": ["n/a", "soon"]}))


def test_user_function_by_dotted_path():
    frame = pd.DataFrame({"a": [1.0, 4.0], "b": [0.0, 1.0], "keep": [7.0, 8.0]})
    prep = Preprocessor(steps=[{"name": "function", "path": f"{__name__}.ratio", "columns": ["a", "b"],
                                "kwargs": {"eps": 1.0}}]).fit(frame)
    assert prep.feature_names_out_ == ["keep", "a_per_b"]
    assert prep.transform(frame).tolist() == [[7.0, 1.0], [8.0, 2.0]]
    rowwise = Preprocessor(steps=[{"name": "function", "path": f"{__name__}.dummies"}])
    rowwise.fit(pd.DataFrame({"c": ["a", "b"]}))
    with pytest.raises(DataError, match=r"gave columns \['c_a'\], not the \['c_a', 'c_b'\]"):
        rowwise.transform(pd.DataFrame({"c": ["a"]}))
    for bad in ("no_such_pkg.mod.fn", "numpy.no_such_fn"):
        with pytest.raises(ConfigError, match=bad.replace(".", r"\.")) as exc:
            Preprocessor(steps=[{"name": "function", "path": bad}]).fit(frame)
        assert exc.value.key == "features.steps[0].path"


def test_columns_left_unencoded_or_missing_are_named():
    frame, y = mixed_frame()
    with pytest.raises(DataError, match=r"\['city', 'color', 'ts'\] are not numeric"):
        Preprocessor(steps=[{"name": "impute", "columns": "numeric"}]).fit(frame, y)
    with pytest.raises(DataError, match=r"names column\(s\) \['nope'\]"):
        Preprocessor(steps=[{"name": "scale", "columns": ["x", "nope"]}]).fit(frame, y)
    prep = Preprocessor().fit(frame.drop(columns="ts"))
    with pytest.raises(DataError, match=r"lacks feature column\(s\) \['color'\]"):
        prep.transform(frame.drop(columns=["ts", "color"]))


# -- selection -----------------------------------------------------------------------------------

INFORMATIVE = ["s1", "s2", "s3"]


def _signal_and_noise(n: int = 600, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"s{i}": rng.normal(size=n) for i in (1, 2, 3)})
    for i in range(6):
        frame[f"noise{i}"] = rng.normal(size=n)
    frame["constant"] = 3.0
    y = np.where(frame["s1"] + frame["s2"] - frame["s3"] + 0.3 * rng.normal(size=n) > 0, "pos", "neg")
    return frame, y


def test_variance_filter_drops_only_constant_features():
    frame, y = _signal_and_noise()
    prep = Preprocessor(selection=[{"method": "variance"}]).fit(frame, y)
    assert prep.feature_names_out_ == [c for c in frame.columns if c != "constant"]
    assert prep.selection_[0]["scores"]["constant"] == 0.0
    assert prep.transform(frame).shape == (len(frame), len(frame.columns) - 1)


@pytest.mark.parametrize("spec", [
    {"method": "mutual_info", "k": 3},
    {"method": "model", "estimator": "random_forest", "k": 3},
    {"method": "model", "estimator": "l1_logistic", "k": 3},
])
def test_selectors_keep_the_informative_features(spec):
    frame, y = _signal_and_noise()
    prep = Preprocessor(selection=[{"method": "variance"}, spec]).fit(frame, y)
    assert sorted(prep.feature_names_out_) == INFORMATIVE
    report = prep.selection_[1]
    assert set(report["scores"]) == set(frame.columns) - {"constant"}  # scored after the variance filter
    assert min(report["scores"][c] for c in INFORMATIVE) > max(report["scores"][f"noise{i}"] for i in range(6))
    assert np.array_equal(prep.transform(frame), frame[prep.feature_names_out_].to_numpy())


def test_k_and_threshold_are_respected():
    frame, y = _signal_and_noise()
    top1 = Preprocessor(selection=[{"method": "mutual_info", "k": 1}]).fit(frame, y)
    assert len(top1.feature_names_out_) == 1 and top1.feature_names_out_[0] in INFORMATIVE
    prep = Preprocessor(selection=[{"method": "model", "threshold": 0.1}]).fit(frame, y)
    scores = prep.selection_[0]["scores"]
    assert set(prep.feature_names_out_) == {n for n, s in scores.items() if s >= 0.1}
    assert set(prep.feature_names_out_) == set(INFORMATIVE)
    both = Preprocessor(selection=[{"method": "model", "threshold": 0.1, "k": 2}]).fit(frame, y)
    assert len(both.feature_names_out_) == 2 and set(both.feature_names_out_) < set(INFORMATIVE)
    with pytest.raises(DataError, match="no feature scored >= threshold 5"):
        Preprocessor(selection=[{"method": "mutual_info", "threshold": 5}]).fit(frame, y)
    with pytest.raises(DataError, match="needs it: fit the Preprocessor with"):
        Preprocessor(selection=[{"method": "mutual_info", "k": 2}]).fit(frame)


# -- the whole path: train -> MLflow -> load -> serve --------------------------------------------
