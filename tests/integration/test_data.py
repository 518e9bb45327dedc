"""Sources read through real Ray Data: files, folders and globs, fingerprinted snapshots stored once,
bad sources that say what to fix. Splits and fingerprints without Ray: tests/unit/data/test_data.py."""

import os

import numpy as np
import pandas as pd
import pytest

from mlauto.data import FileSource, SampleSource, ingest, make_source
from mlauto.errors import ConfigError, DataError


def test_sample_snapshot_is_fingerprinted_and_stored_once(ray_session, tmp_path):
    first = ingest(SampleSource("breast_cancer"), str(tmp_path))
    assert first.n_rows == 569 and "target" in first.columns
    assert os.path.basename(first.path) == f"{first.fingerprint}.parquet"
    mtime = os.path.getmtime(first.path)
    second = ingest(SampleSource("breast_cancer"), str(tmp_path))
    assert second.fingerprint == first.fingerprint
    assert os.path.getmtime(second.path) == mtime  # not written again
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".parquet")]) == 1


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_file_source_reads_through_ray_data(ray_session, tmp_path, fmt):
    frame = pd.DataFrame({"x": np.arange(20, dtype=float), "c": list("ab") * 10, "y": [0, 1] * 10})
    path = tmp_path / f"data.{'jsonl' if fmt == 'json' else fmt}"
    {"csv": lambda: frame.to_csv(path, index=False), "parquet": lambda: frame.to_parquet(path),
     "json": lambda: frame.to_json(path, orient="records", lines=True)}[fmt]()
    snap = ingest(make_source("auto", name=None, path=str(path), format=None, target="y"), str(tmp_path / "s"))
    got = snap.to_pandas()
    assert len(got) == 20 and set(got.columns) == {"x", "c", "y"}
    assert got["x"].sum() == frame["x"].sum()


def test_folder_and_glob_sources(ray_session, tmp_path):
    for i in range(6):
        pd.DataFrame({"x": np.arange(50) + 100 * i, "y": [0, 1] * 25}).to_csv(tmp_path / f"part{i}.csv", index=False)
    first = ingest(FileSource(str(tmp_path)), str(tmp_path / "s1"))
    assert first.n_rows == 300
    assert first.to_pandas()["x"].tolist() == [x + 100 * i for i in range(6) for x in range(50)]  # file order kept
    again = [ingest(FileSource(str(tmp_path)), str(tmp_path / f"s{k}")).fingerprint for k in range(2, 5)]
    assert again == [first.fingerprint] * 3  # unchanged folder: same fingerprint on every read
    assert ingest(FileSource(str(tmp_path / "part[01].csv")), str(tmp_path / "g")).n_rows == 100


def test_bad_sources_say_what_to_fix(ray_session, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        FileSource(str(tmp_path / "nope.csv")).read()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        FileSource(str(empty)).read()
    with pytest.raises(ConfigError) as exc:
        SampleSource("titanic").read()
    assert exc.value.key == "data.name" and "breast_cancer" in str(exc.value)
