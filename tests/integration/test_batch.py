"""Batch scoring on real Ray Data with the registered model: same answers as the pipeline and serving,
dirty rows quarantined with reasons, rows in = scored + quarantined, errors that say what to fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlauto import context
from mlauto.errors import DataError, ModelNotFoundError
from mlauto.serve.batch import score_file
from mlauto.config.schema import PredictConf
from mlauto.serve.predict import score
from mlauto.serve.validation import RequestValidator
from mlauto.track import BundleLoader


def _score(path, cfg, *, version=None, model_name=None, **predict):
    """score_file on ``path`` with one worker, batches of 40 and ``predict``'s other keys (PredictConf's)."""
    conf = PredictConf(input=path, **{"workers": 1, "batch_size": 40, **predict})
    return score_file(conf, context.tracking_uri(cfg), model_name or context.model_name(cfg), version)


@pytest.fixture(scope="module")
def rows(trained):
    """The test split with its label and an id column the model never saw."""
    _, result = trained
    frame = result.splits.test.reset_index(drop=True).copy()
    frame.insert(0, "row_id", np.arange(len(frame)) + 1000)
    return frame


def test_parquet_predictions_match_the_pipeline_and_serving(trained, rows, tmp_path):
    cfg, result = trained
    src = tmp_path / "rows.parquet"
    rows.to_parquet(src, index=False)
    out = _score(str(src), cfg)
    assert out.output == str(tmp_path / "rows.predictions.parquet") and out.format == "parquet"
    assert (out.rows_in, out.rows_scored, out.rows_quarantined, out.quarantine) == (len(rows), len(rows), 0, None)
    got = pd.read_parquet(out.output)
    model = result.final.pipeline
    features = result.splits.features
    labels = [str(c) for c in model.classes_]
    assert list(got.columns) == [*rows.columns, "prediction", *(f"proba_{c}" for c in labels),
                                 "model_name", "model_version"]
    assert got["row_id"].tolist() == rows["row_id"].tolist()  # input order kept, every input column kept
    pd.testing.assert_frame_equal(got[rows.columns], rows, check_dtype=False)
    assert got["prediction"].tolist() == model.predict(rows[features]).tolist()
    proba = got[[f"proba_{c}" for c in labels]].to_numpy()
    assert np.allclose(proba, model.predict_proba(rows[features]))
    assert np.allclose(proba.sum(axis=1), 1.0)
    bundle = BundleLoader(context.tracking_uri(cfg), context.model_name(cfg), with_reference=False)()
    served = score(bundle.pipeline, RequestValidator(bundle.schema), rows[features].to_dict(orient="records"))
    assert got["prediction"].tolist() == served.predictions.tolist()  # what POST /predict answers
    assert np.allclose(proba, served.proba)
    assert set(got["model_name"]) == {context.model_name(cfg)}
    assert set(got["model_version"]) == {result.tracked.version}
    assert out.model_version == result.tracked.version


def test_dirty_csv_folder_quarantines_rows_with_reasons(trained, rows, tmp_path):
    """Two CSV files in a folder, CSV out: bad rows set aside with a reason; the rest scored as serving would."""
    cfg, result = trained
    features = result.splits.features
    num_a, num_b = features[0], features[1]
    folder = tmp_path / "in"
    folder.mkdir()
    text = rows.astype(object)
    text.iloc[:30].to_csv(folder / "a.csv", index=False)
    dirty = text.iloc[30:60].copy()
    dirty.loc[dirty.index[0], num_a] = "abc"  # unparseable number
    dirty.loc[dirty.index[1], num_b] = "inf"  # serving refuses non-finite numbers
    dirty.loc[dirty.index[2], num_a] = "1,5"
    dirty.loc[dirty.index[3], num_b] = None  # an empty cell: missing, imputed like serving does
    dirty.loc[dirty.index[4], num_a] = " 12.5 "  # padded number: parsed
    dirty.to_csv(folder / "b.csv", index=False)
    out_path = tmp_path / "out" / "scored.csv"
    out = _score(str(folder), cfg, output=str(out_path), batch_size=16)
    assert out.format == "csv" and out.output == str(out_path)
    assert (out.rows_in, out.rows_scored, out.rows_quarantined) == (60, 57, 3)
    assert out.rows_in == out.rows_scored + out.rows_quarantined
    quarantine = pd.read_parquet(out.quarantine)
    assert out.quarantine == str(tmp_path / "out" / "scored.quarantine.parquet")
    assert list(quarantine.columns) == [*rows.columns, "reason"]
    assert quarantine["row_id"].tolist() == [str(i) for i in rows["row_id"].iloc[[30, 31, 32]]]
    assert quarantine[num_a].tolist()[::2] == ["abc", "1,5"]  # the values exactly as read
    assert quarantine["reason"].str.startswith(f"{num_a}: Input should be a valid number").tolist()[::2] == [True] * 2
    assert quarantine["reason"][1].startswith(f"{num_b}: Input should be a finite number")
    assert sum(out.reasons.values()) == 3
    got = pd.read_csv(out_path)
    assert len(got) == 57 and "row_id" in got.columns and "target" in got.columns
    expected = rows.iloc[:60].drop(index=[30, 31, 32]).reset_index(drop=True)
    expected.loc[33 - 3, num_b] = np.nan
    expected.loc[34 - 3, num_a] = 12.5
    assert got["row_id"].tolist() == expected["row_id"].tolist()
    model = result.final.pipeline
    assert got["prediction"].tolist() == model.predict(expected[features]).tolist()
    labels = [f"proba_{c}" for c in model.classes_]
    assert np.allclose(got[labels].to_numpy(), model.predict_proba(expected[features]))
    assert np.allclose(got[labels].sum(axis=1), 1.0)
    assert np.isnan(got.loc[30, num_b]) and got.loc[31, num_a] == 12.5


def test_missing_feature_quarantines_every_row_and_named_version(trained, rows, tmp_path):
    cfg, result = trained
    missing = result.splits.features[2]
    src = tmp_path / "partial.parquet"
    rows.drop(columns=[missing]).head(10).to_parquet(src, index=False)
    out = _score(str(src), cfg, version=result.tracked.version, format="csv")
    assert out.output == str(tmp_path / "partial.predictions.csv")
    assert (out.rows_in, out.rows_scored, out.rows_quarantined) == (10, 0, 10)
    assert out.reasons == {f"{missing}: Field required": 10}
    assert out.model_version == result.tracked.version
    assert len(pd.read_csv(out.output)) == 0  # the output exists, with its columns, and no row
    assert len(pd.read_parquet(out.quarantine)) == 10


def test_errors_say_what_to_fix(trained, rows, tmp_path):
    cfg, _ = trained
    with pytest.raises(DataError, match="does not exist"):
        _score(str(tmp_path / "nope.csv"), cfg)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        _score(str(tmp_path / "empty.csv"), cfg)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no .csv or .parquet"):
        _score(str(tmp_path / "dir"), cfg)
    rows.head(3).to_csv(tmp_path / "ok.csv", index=False)
    with pytest.raises(ModelNotFoundError, match="run the tune stage first"):
        _score(str(tmp_path / "ok.csv"), cfg, model_name="mlauto-never-trained")
    with pytest.raises(ModelNotFoundError, match="version 999"):
        _score(str(tmp_path / "ok.csv"), cfg, version=999)
    with pytest.raises(DataError, match="predict.format is parquet"):
        _score(str(tmp_path / "ok.csv"), cfg, output=str(tmp_path / "x.csv"), format="parquet")
    rows.head(0).to_csv(tmp_path / "header_only.csv", index=False)
    with pytest.raises(DataError, match="holds no rows"):
        _score(str(tmp_path / "header_only.csv"), cfg)
    assert not os.path.exists(tmp_path / "header_only.predictions.parquet")
    clash = rows.head(3).assign(prediction=1)
    clash.to_parquet(tmp_path / "clash.parquet", index=False)
    with pytest.raises(DataError, match="clash"):
        _score(str(tmp_path / "clash.parquet"), cfg)
    assert not os.path.exists(tmp_path / "clash.predictions.parquet")


@pytest.mark.slow
def test_cli_predict(trained, rows, tmp_path, ray_session):
    """``python -m mlauto action=predict`` on a running cluster (the test session's); prints the summary as JSON."""
    cfg, result = trained
    src = tmp_path / "cli.csv"
    rows.head(25).to_csv(src, index=False)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "mlauto", "action=predict", f"root={cfg.root}", f"name={cfg.name}",
         f"predict.input={src}", "predict.workers=1", f"cluster.address={ray_session['address']}"],
        capture_output=True, text=True, timeout=400, env=env, cwd=os.getcwd())
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_quarantined"]) == (25, 25, 0)
    assert summary["model_version"] == result.tracked.version
    got = pd.read_parquet(tmp_path / "cli.predictions.parquet")
    features = result.splits.features
    assert got["prediction"].tolist() == result.final.pipeline.predict(rows.head(25)[features]).tolist()
    bad = subprocess.run([sys.executable, "-m", "mlauto", "action=predict", f"root={cfg.root}"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=os.getcwd())
    assert bad.returncode == 2 and "predict.input" in bad.stderr + bad.stdout
