"""The schema saved by a real prepare stage catches what changed in a later snapshot."""

import dataclasses
import json

import pytest

from mlauto.errors import DataError
from tests.helpers import profile_frame


def test_prepare_saves_the_schema_then_checks_later_snapshots(ray_session, tmp_path):
    """Through the streamed prepare path: first snapshot saves the schema, a changed one is reported or refused."""
    from mlauto.config.schema import PrepareConf
    from mlauto.data import PrepareDirs, clean_rules, prepare_snapshot

    first, later = profile_frame(600, seed=2), profile_frame(600, seed=3)
    later.loc[:9, "color"] = "green"
    later["extra"] = 1.0
    for name, data in (("a", first), ("b", later)):
        data.to_parquet(tmp_path / f"{name}.parquet", index=False)
    dirs = PrepareDirs(str(tmp_path / "q"), str(tmp_path / "c"), str(tmp_path / "p"),
                       str(tmp_path / "p" / "schema.json"))
    conf = PrepareConf(clean=clean_rules())
    splits = prepare_snapshot(str(tmp_path / "a.parquet"), "y", conf, 0, fingerprint="a", dirs=dirs)
    assert splits.quality["schema_check"]["ok"] and (tmp_path / "p" / "schema.json").exists()
    assert sum(splits.counts().values()) == 600
    profile = json.loads((tmp_path / "p" / "a.json").read_text())
    assert profile["rows"] == 600 and profile["features"]["color"]["type"] == "categorical"
    warned = prepare_snapshot(str(tmp_path / "b.parquet"), "y", dataclasses.replace(conf, schema_check="warn"), 0,
                         fingerprint="b", dirs=dirs)
    report = warned.quality["schema_check"]
    assert report["new_columns"] == ["extra"] and report["unseen_categories"]["color"]["rows"] == 10
    with pytest.raises(DataError, match="does not match the saved schema"):
        prepare_snapshot(str(tmp_path / "b.parquet"), "y", dataclasses.replace(conf, schema_check="fail"), 0,
                         fingerprint="b", dirs=dirs)
