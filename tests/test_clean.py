"""Cleaning with quarantine: nothing is lost (rows in = kept + quarantined), bad input is refused clearly."""

import json

import numpy as np
import pandas as pd
import pytest
import ray.data

from conftest import make_config
from mlauto.data import CleanRules, clean_dataset, clean_frame
from mlauto.errors import ConfigError, DataError


def dirty_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Mixed types as a CSV reader sees them (text), missing values, bad numbers, odd categories, duplicates."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 90, n).astype(str).astype(object),
        "income": np.round(rng.normal(50, 10, n), 2).astype(str).astype(object),
        "city": rng.choice(["paris", "lyon", "nice"], n).astype(object),
        "plan": rng.choice(["a", "b"], n).astype(object),
        "y": rng.choice(["no", "yes"], n).astype(object),
    })
    frame.loc[[5, 17], "age"] = "abc"  # unparseable numbers
    frame.loc[[9], "income"] = "n/a!"
    frame.loc[[20, 21, 22], "income"] = None  # plain missing values: kept, imputed later
    frame.loc[[30, 31], "y"] = None  # missing target
    frame.loc[[40], "y"] = "  "
    frame.loc[[50], "city"] = "atlantis"  # out of domain when categories are configured
    frame.loc[[60], "age"] = "150"  # out of range when a range is configured
    frame = pd.concat([frame, frame.iloc[[100, 101, 101]]], ignore_index=True)  # three duplicate rows
    return frame


RULES = {"columns": {"age": {"range": [0, 120]}, "city": {"categories": ["paris", "lyon", "nice"]}}}


def test_dirty_rows_are_quarantined_with_reasons_and_nothing_is_lost(tmp_path):
    frame = dirty_frame()
    result = clean_frame(frame, "y", CleanRules.from_dict(RULES), fingerprint="fp9", quarantine_dir=str(tmp_path))
    assert result.rows_in == len(frame) == result.rows_kept + result.rows_quarantined
    assert result.reasons == {"unparseable number in age": 2, "unparseable number in income": 1,
                              "missing target": 3, "out-of-domain category in city": 1,
                              "out of range in age": 1, "duplicate row": 3}
    assert result.kinds == {"age": "numeric", "income": "numeric", "city": "categorical", "plan": "categorical"}
    q = pd.read_parquet(result.quarantine_path)
    assert len(q) == result.rows_quarantined == sum(result.reasons.values())
    assert set(q["snapshot"]) == {"fp9"}
    assert sorted(q.loc[q["reason"] == "unparseable number in age", "age"]) == ["abc", "abc"]  # as read
    assert q.loc[q["reason"] == "out of range in age", "age"].tolist() == ["150"]
    kept = result.frame
    assert kept["age"].dtype.kind == "f" and kept["income"].isna().sum() == 3  # missing stays missing
    assert not kept.duplicated().any() and kept["y"].notna().all()
    assert kept["age"].between(0, 120).all() and set(kept["city"]) == {"paris", "lyon", "nice"}


def test_impute_rule_repairs_instead_of_quarantining(tmp_path):
    frame = dirty_frame()
    rules = CleanRules.from_dict({"dedupe": False, "columns": {"age": {"on_invalid": "impute", "range": [0, 120]},
                                                               "income": {"on_invalid": "impute", "fill": 0.0}}})
    result = clean_frame(frame, "y", rules, fingerprint="f", quarantine_dir=str(tmp_path))
    assert result.reasons == {"missing target": 3}
    assert result.repaired == {"unparseable number in age": 2, "out of range in age": 1,
                               "unparseable number in income": 1}
    assert result.rows_kept == len(frame) - 3
    kept = result.frame
    assert kept["age"].isna().sum() == 3 and (kept["income"] == 0.0).sum() == 1


def test_streamed_cleaning_matches_in_memory_and_dedupes_across_batches(ray_session, tmp_path):
    frame = dirty_frame(600, seed=3)
    frame = pd.concat([frame, frame.iloc[:40]], ignore_index=True)  # duplicates land in a later batch
    rules = CleanRules.from_dict(RULES)
    memory = clean_frame(frame, "y", rules, fingerprint="m", quarantine_dir=str(tmp_path / "qm"))
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ds = ray.data.from_pandas(frame).repartition(5)
    streamed = clean_dataset(ds, "y", rules, fingerprint="s", quarantine_dir=str(tmp_path / "qs"),
                             kept_path=str(tmp_path / "kept.parquet"), batch_size=64, progress=False)
    assert streamed.reasons == memory.reasons and streamed.reasons["duplicate row"] >= 30
    assert streamed.rows_in == len(frame) == streamed.rows_kept + streamed.rows_quarantined
    kept = pd.read_parquet(streamed.kept_path)
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), memory.frame.reset_index(drop=True),
                                  check_dtype=False)
    assert len(pd.read_parquet(streamed.quarantine_path)) == streamed.rows_quarantined


def test_every_row_bad_empty_and_wrong_target_say_what_to_fix(tmp_path):
    bad = pd.DataFrame({"x": ["abc", "def", "ghi"] * 20 + ["1"], "y": ["a", "b", "c"] * 20 + ["a"]})
    rules = CleanRules.from_dict({"columns": {"x": {"type": "numeric"}}})
    with pytest.raises(DataError, match="every row was quarantined.*unparseable number in x.*on_invalid"):
        clean_frame(bad.iloc[:60], "y", rules, fingerprint="f", quarantine_dir=str(tmp_path))
    with pytest.raises(DataError, match="no rows"):
        clean_frame(bad.iloc[:0], "y", CleanRules(), fingerprint="f", quarantine_dir=str(tmp_path))
    with pytest.raises(DataError, match="set data.target to one of: x, y"):
        clean_frame(bad, "label", CleanRules(), fingerprint="f", quarantine_dir=str(tmp_path))
    with pytest.raises(DataError, match="names column 'z'"):
        clean_frame(bad, "y", CleanRules.from_dict({"columns": {"z": {"type": "numeric"}}}), fingerprint="f",
                    quarantine_dir=str(tmp_path))


@pytest.mark.parametrize("override,key,allowed", [
    ("prepare.split=kfold", "prepare.split", "stratified"),
    ("prepare.split=group", "prepare.group_column", "a column name"),
    ("prepare.schema_check=maybe", "prepare.schema_check", "warn"),
    ("prepare.clean.on_invalid=drop", "prepare.clean.on_invalid", "impute"),
    ("+prepare.clean.columns.age.range=[5,1]", "prepare.clean.columns.age.range", "low <= high"),
    ("+prepare.clean.columns.age.kind=numeric", "prepare.clean.columns.age.kind", "categories"),
])
def test_bad_prepare_config_names_key_and_allowed_values(override, key, allowed):
    with pytest.raises(ConfigError) as exc:
        make_config([override])
    assert exc.value.key == key and allowed in str(exc.value)


@pytest.mark.slow
def test_dirty_csv_trains_end_to_end_and_quarantine_accounts_for_every_row(ray_session, tmp_path):
    """Through the real pipeline with no manual step: summary and quarantine file add up to the input."""
    from mlauto import ops

    frame = dirty_frame(400, seed=7)
    frame["y"] = np.where(pd.to_numeric(frame["income"], errors="coerce").fillna(50) > 50, "yes", "no")
    frame.loc[[30, 31], "y"] = None
    frame = pd.concat([frame, frame.iloc[[10, 11]]], ignore_index=True)
    path = tmp_path / "dirty.csv"
    frame.to_csv(path, index=False)
    cfg = make_config([f"root={tmp_path / 'runs'}", f"data.path={path}", "data.target=y", "models=fast",
                       "tune.num_samples=2", "stages=[ingest,prepare,tune]", "name=dirty"])
    summary = ops.run(cfg, str(tmp_path / "out"))
    assert summary["status"] == "ok"
    rows, q = summary["rows"], summary["quarantine"]
    assert q["rows_in"] == len(frame) == rows["train"] + rows["val"] + rows["test"] + rows["quarantined"]
    quarantined = pd.read_parquet(q["path"])
    assert len(quarantined) == rows["quarantined"] == sum(q["reasons"].values())
    assert q["reasons"]["missing target"] == 2 and q["reasons"]["duplicate row"] >= 2
    assert q["reasons"]["unparseable number in age"] == 2
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["quarantine"]["reasons"] == q["reasons"]
    profile = json.loads(open(written["data_quality"]["profile_path"]).read())
    assert profile["rows"] == rows["train"] + rows["val"] + rows["test"]
    assert profile["features"]["age"]["type"] == "numeric"
    from mlflow.tracking import MlflowClient

    logged = MlflowClient(summary["tracking_uri"]).list_artifacts(summary["mlflow_run_id"], "data")
    assert [a.path for a in logged] == [f"data/{summary['data_fingerprint']}.json"]
