"""Profile numbers are right, partial profiles merge exactly, and the schema check catches what changed."""


import numpy as np
import pandas as pd
import pytest

from mlauto.data.profile import (
    ProfileAccumulator,
    check_schema,
    correlation_ratio,
    cramers_v,
    enforce_schema,
    profile_table,
    schema_from_profile,
)
from mlauto.errors import DataError
from tests.helpers import profile_frame

KINDS = {"x": "numeric", "noise": "numeric", "color": "categorical"}


def test_profile_numbers_match_pandas():
    data = profile_frame()
    p = ProfileAccumulator(KINDS, "y", sample_size=5000).update(data).result()
    assert p["rows"] == 2000 and p["columns"] == 4
    x = p["features"]["x"]
    assert x["missing_pct"] == pytest.approx(10.0)
    assert x["mean"] == pytest.approx(data["x"].mean()) and x["min"] == data["x"].min()
    assert x["std"] == pytest.approx(data["x"].std(ddof=0), rel=1e-6)
    assert x["quantiles"]["0.5"] == pytest.approx(data["x"].quantile(0.5)) and not x["quantiles_approximate"]
    assert p["features"]["color"]["top"] == data["color"].value_counts().to_dict()
    assert p["features"]["color"]["distinct"] == 2 and p["features"]["noise"]["distinct"] == 2000
    assert p["target_balance"]["a"] == pytest.approx((data["y"] == "a").mean())
    assoc = {c: e["target_association"]["value"] for c, e in p["features"].items()}
    assert assoc["color"] > 0.95 and assoc["x"] > 0.8 and assoc["noise"] < 0.1
    table = profile_table(p)
    assert "2000 rows x 4 columns" in table and f"a: {(data['y'] == 'a').mean():.1%}" in table
    assert f"top red({(data['color'] == 'red').sum()})" in table


def test_partial_profiles_merge_to_one_pass():
    data = profile_frame(3000, seed=1)
    whole = ProfileAccumulator(KINDS, "y", sample_size=500).update(data).result()
    parts = [ProfileAccumulator(KINDS, "y", sample_size=500).update(chunk) for chunk in (data.iloc[i:i + 750] for i in range(0, 3000, 750))]
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    merged = merged.result()
    for key in ("rows", "target_counts"):
        assert merged[key] == whole[key]
    for col in KINDS:
        a, b = merged["features"][col], whole["features"][col]
        for key in ("missing_pct", "distinct", "min", "max", "top", "quantiles"):
            assert a.get(key) == b.get(key), (col, key)  # same bottom-k sample, so even quantiles agree
        if "mean" in a:
            assert a["mean"] == pytest.approx(b["mean"])
    assert merged["features"]["x"]["quantiles_approximate"] and "500 rows" in merged["approximate"]


def test_schema_check_reports_every_kind_of_change():
    train = profile_frame()
    reference = schema_from_profile(ProfileAccumulator(KINDS, "y").update(train).result())
    later = train.drop(columns=["noise"]).assign(extra=1.0)
    later.loc[:9, "x"] = 99.0
    later.loc[:4, "color"] = "green"
    kinds = {"x": "numeric", "color": "categorical", "extra": "numeric"}
    report = check_schema(reference, ProfileAccumulator(kinds, "y", reference=reference).update(later).result())
    assert not report["ok"]
    assert report["new_columns"] == ["extra"] and report["missing_columns"] == ["noise"]
    assert report["out_of_range"]["x"]["rows"] == 10 and report["unseen_categories"]["color"] == {
        "rows": 5, "examples": ["green"]}
    changed = check_schema(reference, ProfileAccumulator({**KINDS, "x": "categorical"}, "y", reference=reference)
                           .update(train.astype({"x": str})).result())
    assert changed["type_changes"] == {"x": {"was": "numeric", "now": "categorical"}}
    with pytest.raises(DataError, match="does not match the saved schema.*extra.*schema_check=warn"):
        enforce_schema(report, "fail", "schema.json")
    enforce_schema(report, "warn", "schema.json")  # logs, does not raise
    same = check_schema(reference, ProfileAccumulator(KINDS, "y", reference=reference).update(train).result())
    assert same["ok"]


def test_association_measures_are_bounded():
    rng = np.random.default_rng(0)
    classes = rng.choice(["a", "b", "c"], 3000)
    assert correlation_ratio(rng.normal(size=3000), classes) < 0.1
    assert correlation_ratio(pd.Series(classes).map({"a": 0.0, "b": 1.0, "c": 2.0}).to_numpy(), classes) == \
        pytest.approx(1.0)
    assert cramers_v(pd.Series(classes), pd.Series(classes)) == pytest.approx(1.0)
    assert cramers_v(pd.Series(rng.choice(["u", "v"], 3000)), pd.Series(classes)) < 0.1
