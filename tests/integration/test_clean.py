"""Cleaning on real Ray Data: streamed batches give the same rows as in memory, and a dirty CSV trains
through the pipeline with every row accounted for. The rules themselves: tests/unit/data/test_clean.py."""

import json

import numpy as np
import pandas as pd
import pytest
import ray.data

from mlauto.data import clean_dataset, clean_frame, clean_rules
from mlauto.data.clean import CleanOutput
from tests.helpers import CLEAN_RULES, dirty_frame, make_config


def test_streamed_cleaning_matches_in_memory_and_dedupes_across_batches(ray_session, tmp_path):
    frame = dirty_frame(600, seed=3)
    frame = pd.concat([frame, frame.iloc[:40]], ignore_index=True)  # duplicates land in a later batch
    rules = clean_rules(CLEAN_RULES)
    memory = clean_frame(frame, "y", rules, fingerprint="m", quarantine_dir=str(tmp_path / "qm"))
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ds = ray.data.from_pandas(frame).repartition(5)
    streamed = clean_dataset(ds, "y", rules, CleanOutput("s", str(tmp_path / "qs"), str(tmp_path / "kept.parquet")),
                             batch_size=64, progress=False)
    assert streamed.reasons == memory.reasons and streamed.reasons["duplicate row"] >= 30
    assert streamed.rows_in == len(frame) == streamed.rows_kept + streamed.rows_quarantined
    kept = pd.read_parquet(streamed.kept_path)
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), memory.frame.reset_index(drop=True),
                                  check_dtype=False)
    assert len(pd.read_parquet(streamed.quarantine_path)) == streamed.rows_quarantined


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
