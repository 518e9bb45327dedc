"""Cleaning with quarantine: nothing is lost (rows in = kept + quarantined), bad input is refused clearly."""


import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException

from tests.helpers import CLEAN_RULES, dirty_frame, make_config
from mlauto.data import clean_frame, clean_rules
from mlauto.errors import ConfigError, DataError


def test_dirty_rows_are_quarantined_with_reasons_and_nothing_is_lost(tmp_path):
    frame = dirty_frame()
    result = clean_frame(frame, "y", clean_rules(CLEAN_RULES), fingerprint="fp9", quarantine_dir=str(tmp_path))
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
    rules = clean_rules({"dedupe": False, "columns": {"age": {"on_invalid": "impute", "range": [0, 120]},
                                                               "income": {"on_invalid": "impute", "fill": 0.0}}})
    result = clean_frame(frame, "y", rules, fingerprint="f", quarantine_dir=str(tmp_path))
    assert result.reasons == {"missing target": 3}
    assert result.repaired == {"unparseable number in age": 2, "out of range in age": 1,
                               "unparseable number in income": 1}
    assert result.rows_kept == len(frame) - 3
    kept = result.frame
    assert kept["age"].isna().sum() == 3 and (kept["income"] == 0.0).sum() == 1


def test_every_row_bad_empty_and_wrong_target_say_what_to_fix(tmp_path):
    bad = pd.DataFrame({"x": ["abc", "def", "ghi"] * 20 + ["1"], "y": ["a", "b", "c"] * 20 + ["a"]})
    rules = clean_rules({"columns": {"x": {"type": "numeric"}}})
    with pytest.raises(DataError, match="every row was quarantined.*unparseable number in x.*on_invalid"):
        clean_frame(bad.iloc[:60], "y", rules, fingerprint="f", quarantine_dir=str(tmp_path))
    with pytest.raises(DataError, match="no rows"):
        clean_frame(bad.iloc[:0], "y", clean_rules(), fingerprint="f", quarantine_dir=str(tmp_path))
    with pytest.raises(DataError, match="set data.target to one of: x, y"):
        clean_frame(bad, "label", clean_rules(), fingerprint="f", quarantine_dir=str(tmp_path))
    with pytest.raises(DataError, match="names column 'z'"):
        clean_frame(bad, "y", clean_rules({"columns": {"z": {"type": "numeric"}}}), fingerprint="f",
                    quarantine_dir=str(tmp_path))


@pytest.mark.parametrize("override,key,allowed", [
    ("prepare.split=group", "prepare.group_column", "a column name"),
    ("+prepare.clean.columns.age.range=[5,1]", "prepare.clean.columns.age.range", "low <= high"),
    ("+prepare.clean.columns.age.kind=numeric", "prepare.clean.columns.age.kind", "categories"),
])
def test_bad_prepare_config_names_key_and_allowed_values(override, key, allowed):
    with pytest.raises(ConfigError) as exc:
        make_config([override])
    assert exc.value.key == key and allowed in str(exc.value)


@pytest.mark.parametrize("override,key,allowed", [
    ("prepare.split=kfold", "prepare.split", "stratified"),
    ("prepare.schema_check=maybe", "prepare.schema_check", "warn"),
    ("prepare.clean.on_invalid=drop", "prepare.clean.on_invalid", "impute"),
])
def test_bad_prepare_choice_fails_at_composition(override, key, allowed):
    """Fixed choices are Enums of the schema: Hydra refuses them naming the key and the allowed values."""
    with pytest.raises(ConfigCompositionException) as exc:
        make_config([override])
    text = str(exc.value.__cause__)
    assert f"full_key: {key}" in text and allowed in text
