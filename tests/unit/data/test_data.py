
import numpy as np
import pandas as pd
import pytest

from mlauto.config.schema import PrepareConf as prep  # the prepare section, schema defaults
from mlauto.data import fingerprint, make_splits, split
from mlauto.errors import DataError


def test_fingerprint_changes_with_content():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    changed = frame.copy()
    changed.loc[1, "a"] = 2.5
    assert fingerprint(frame) == fingerprint(frame.copy())
    assert fingerprint(frame) != fingerprint(changed)


def _frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n), "y": [0, 0, 1] * (n // 3)})


def test_wrong_target_names_the_columns(tmp_path):
    with pytest.raises(DataError, match="set data.target to one of: x, c, y"):
        make_splits(_frame(), "label", prep(), 0, fingerprint="f", quarantine_dir=str(tmp_path))


def test_rows_without_target_are_quarantined_not_lost(tmp_path):
    frame = _frame().astype({"y": "float"})
    frame.loc[[3, 7, 11], "y"] = np.nan
    splits = make_splits(frame, "y", prep(), 0, fingerprint="fp1", quarantine_dir=str(tmp_path))
    kept = len(splits.train) + len(splits.val) + len(splits.test)
    assert kept + splits.quarantined == len(frame)
    q = pd.read_parquet(splits.quarantine_path)
    assert len(q) == 3 and set(q["reason"]) == {"missing target"} and set(q["snapshot"]) == {"fp1"}
    assert splits.quarantine_reasons == {"missing target": 3}


def test_every_row_bad_fails_clearly(tmp_path):
    frame = _frame().astype({"y": "float"})
    frame["y"] = np.nan
    with pytest.raises(DataError, match="every row lacks the target"):
        make_splits(frame, "y", prep(), 0, fingerprint="f", quarantine_dir=str(tmp_path))


def test_stratified_split_is_seeded_and_disjoint(tmp_path):
    frame = _frame(300)
    frame["row"] = range(len(frame))
    kw = dict(fingerprint="f", quarantine_dir=str(tmp_path))
    a = make_splits(frame, "y", prep(), 1, **kw)
    b = make_splits(frame, "y", prep(), 1, **kw)
    c = make_splits(frame, "y", prep(), 2, **kw)
    assert a.test["row"].tolist() == b.test["row"].tolist() != c.test["row"].tolist()
    assert (len(a.train), len(a.val), len(a.test)) == (180, 60, 60)
    rows = [set(s["row"]) for s in (a.train, a.val, a.test)]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    for part in (a.train, a.val, a.test):  # class balance kept in every split
        assert part["y"].mean() == pytest.approx(frame["y"].mean(), abs=0.02)


def _events(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(size=n), "user": rng.integers(0, 40, n).astype(str),
        "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(n) // 2, unit="h"),
        "y": rng.choice([0, 1], n, p=[0.7, 0.3]),
    })


def test_group_split_keeps_each_group_on_one_side_and_is_seeded():
    frame = _events()
    conf = prep(split="group", group_column="user")
    train, val, test = split(frame, "y", conf, 3)
    groups = [set(p["user"]) for p in (train, val, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert len(train) + len(val) + len(test) == len(frame)
    again = split(frame, "y", conf, 3)
    assert all(a.equals(b) for a, b in zip((train, val, test), again))
    assert set(split(frame, "y", conf, 4)[2]["user"]) != groups[2]


def test_time_split_trains_on_the_past():
    frame = _events()
    train, val, test = split(frame, "y", prep(split="time", time_column="when"), 0)
    assert train["when"].max() <= val["when"].min() and val["when"].max() <= test["when"].min()
    assert (len(train), len(val), len(test)) == (240, 80, 80)
    # time as ISO text (as read from a CSV) works the same
    text = frame.assign(when=frame["when"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    _, _, test_text = split(text, "y", prep(split="time", time_column="when"), 0)
    assert sorted(test_text["x"]) == sorted(test["x"])


def test_random_and_stratified_splits_are_reproducible_and_keep_proportions():
    frame = _events(1000)
    for method in ("random", "stratified"):
        a = split(frame, "y", prep(split=method), 5)
        b = split(frame, "y", prep(split=method), 5)
        assert all(p.equals(q) for p, q in zip(a, b))
        assert [len(p) for p in a] == [600, 200, 200]
    strat = split(frame, "y", prep(split="stratified"), 5)
    for part in strat:
        assert part["y"].mean() == pytest.approx(frame["y"].mean(), abs=0.005)


def test_split_needs_its_column(tmp_path):
    with pytest.raises(DataError, match="prepare.split=group needs prepare.group_column"):
        split(_events(), "y", prep(split="group", group_column="nope"), 0)
    frame = _events().astype({"when": object})
    frame.loc[[1, 2], "when"] = None
    s = make_splits(frame, "y", prep(split="time", time_column="when"), 0, fingerprint="t",
                    quarantine_dir=str(tmp_path))
    assert s.quarantine_reasons == {"missing when": 2}
    assert sum(s.counts().values()) == len(frame)
