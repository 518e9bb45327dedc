"""Ingestion: the SQL source (real SQLite files), snapshots (stored once, listed, pruned) and scheduled
ingestion by a detached Ray actor on a seconds-level cron schedule."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import numpy as np
import pandas as pd
import pytest
import ray

from tests.helpers import free_port, ingest_frame, make_config, wait_for_actor, write_sqlite
from mlauto.config.schema import MonitorConf
from mlauto import context, ops, train
from mlauto.ops import manage
from mlauto.data import (
    FileSource,
    SQLSource,
    current_fingerprint,
    ingest,
    list_snapshots,
    make_source,
    prune_snapshots,
    schedule_status,
    start_schedule,
    stop_schedule,
)
from mlauto.errors import ConfigError, DataError

NS = "mlauto-tests"

# Callbacks and retrain functions below run in Ray workers, which cannot import this test module.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


# -- SQL source ----------------------------------------------------------------------------------


def test_sql_table_and_query_read_through_ray_data(ray_session, tmp_path):
    frame = ingest_frame(60)
    url = write_sqlite(tmp_path / "shop.db", frame)
    by_table = ingest(make_source("sql", url=url, table="rows", target="y"), str(tmp_path / "s"))
    got = by_table.to_pandas()
    assert by_table.n_rows == 60 and list(got.columns) == ["id", "x", "c", "y"]
    assert got["x"].sum() == frame["x"].sum() and got["id"].tolist() == list(range(60))
    assert by_table.source == {"source": "sql", "url": url, "query": None, "table": "rows"}

    query = make_source("auto", url=url, query="SELECT id, x, y FROM rows WHERE c = 'a';", path=None, target="y")
    assert isinstance(query, SQLSource)
    q = ingest(query, str(tmp_path / "s")).to_pandas()
    assert list(q.columns) == ["id", "x", "y"] and q["id"].tolist() == list(range(0, 60, 2))

    # shard_keys: SQLite lacks MD5, so Ray falls back to one read task; no row is lost or repeated.
    sharded = ingest(SQLSource(url, table="rows", shard_keys=["id"]), str(tmp_path / "s2"))
    assert sharded.fingerprint == by_table.fingerprint


def test_sql_errors_say_what_to_fix(ray_session, tmp_path):
    url = write_sqlite(tmp_path / "shop.db", ingest_frame(10))
    missing = tmp_path / "nope.db"
    with pytest.raises(DataError, match="nope.db does not exist; fix data.url"):
        SQLSource(f"sqlite:///{missing}", table="rows").read()
    assert not missing.exists()  # SQLite was not allowed to create an empty database
    with pytest.raises(DataError, match=r"table 'orders' does not exist .*set data.table to one of: rows"):
        SQLSource(url, table="orders").read()
    with pytest.raises(DataError, match="refused .*no such column: nope.*fix data.query"):
        SQLSource(url, query="SELECT nope FROM rows").read()
    with pytest.raises(DataError, match="has no rows"):
        ingest(SQLSource(url, query="SELECT * FROM rows WHERE id < 0"), str(tmp_path / "s"))
    for kwargs in ({}, {"query": "SELECT 1", "table": "rows"}):
        with pytest.raises(ConfigError) as exc:
            SQLSource(url, **kwargs).read()
        assert exc.value.key == "data.query/data.table" and "exactly one" in str(exc.value)
    with pytest.raises(ConfigError, match="the sql source needs data.url"):
        make_source("sql", url=None, table="rows")


def test_unreachable_postgres_fails_with_a_data_error_and_hides_the_password(ray_session):
    pytest.importorskip("psycopg")
    source = SQLSource(f"postgresql://bob:s3cret@127.0.0.1:{free_port()}/shop", table="orders")
    with pytest.raises(DataError) as exc:
        source.read()
    message = str(exc.value)
    assert "cannot connect to postgresql://bob:***@127.0.0.1" in message and "s3cret" not in message
    assert "check data.url" in message
    assert source.describe()["url"].startswith("postgresql://bob:***@")


# -- snapshots -----------------------------------------------------------------------------------


def test_unchanged_source_is_stored_once(ray_session, tmp_path):
    csv = tmp_path / "data.csv"
    ingest_frame().to_csv(csv, index=False)
    snaps = str(tmp_path / "snaps")
    first = ingest(FileSource(str(csv)), snaps)
    mtime = os.path.getmtime(first.path)
    time.sleep(0.05)
    second = ingest(FileSource(str(csv)), snaps)
    assert first.new and not second.new
    assert second.fingerprint == first.fingerprint and second.created == first.created
    assert second.last_seen > first.last_seen and os.path.getmtime(first.path) == mtime
    assert set(os.listdir(snaps)) == {"CURRENT", f"{first.fingerprint}.json", f"{first.fingerprint}.parquet"}
    assert [s.fingerprint for s in list_snapshots(snaps)] == [first.fingerprint]


def test_snapshots_are_listed_and_pruned_keeping_the_one_in_use(ray_session, tmp_path):
    csv = tmp_path / "data.csv"
    snaps = str(tmp_path / "snaps")
    made = []
    for k in range(4):
        ingest_frame(20 + 2 * k, shift=k).to_csv(csv, index=False)
        made.append(ingest(FileSource(str(csv)), snaps))
    listed = list_snapshots(snaps)
    assert [s.fingerprint for s in listed] == [s.fingerprint for s in reversed(made)]  # newest first
    assert [s.n_rows for s in listed] == [26, 24, 22, 20]
    assert all(s.columns == ["id", "x", "c", "y"] and s.source["source"] == "file" for s in listed)
    assert current_fingerprint(snaps) == made[3].fingerprint

    # The oldest content comes back: it is the one in use now, and the most recently seen.
    ingest_frame(20, shift=0).to_csv(csv, index=False)
    again = ingest(FileSource(str(csv)), snaps)
    assert again.fingerprint == made[0].fingerprint and not again.new
    removed = prune_snapshots(snaps, keep=2, protect=[made[1].fingerprint])
    assert {s.fingerprint for s in removed} == {made[2].fingerprint}
    assert {s.fingerprint for s in list_snapshots(snaps)} == {made[0].fingerprint, made[3].fingerprint,
                                                              made[1].fingerprint}
    assert not os.path.exists(made[2].path) and not os.path.exists(made[2].path.replace(".parquet", ".json"))

    # keep=1 at ingestion: only the snapshot just ingested stays.
    last = ingest(FileSource(str(csv)), snaps, keep=1)
    assert [s.fingerprint for s in list_snapshots(snaps)] == [last.fingerprint] == [made[0].fingerprint]
    assert sorted(f for f in os.listdir(snaps) if f.endswith(".parquet")) == [f"{last.fingerprint}.parquet"]


def test_snapshot_listing_from_the_cli(ray_session, tmp_path, caplog):
    csv = tmp_path / "data.csv"
    ingest_frame().to_csv(csv, index=False)
    root = tmp_path / "runs"
    cfg = make_config([f"root={root}", f"data.path={csv}", "data.target=y", "ingest.keep_snapshots=3"])
    snap = train.ingest_stage(cfg, {})
    with caplog.at_level(logging.INFO, logger="mlauto"):
        listing = manage(make_config([f"root={root}", "action=snapshots"]))
    assert listing["current"] == snap.fingerprint
    assert [(s["fingerprint"], s["n_rows"]) for s in listing["snapshots"]] == [(snap.fingerprint, 40)]
    assert f"* {snap.fingerprint}" in caplog.text and "1 snapshot(s)" in caplog.text


# -- scheduled ingestion -------------------------------------------------------------------------


class RecordSnapshot:
    """A picklable on_new_snapshot callback that appends the fingerprint to a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, snapshot) -> str:
        with open(self.path, "a") as fh:
            fh.write(snapshot.fingerprint + "\n")
        return snapshot.fingerprint


def test_schedule_records_runs_survives_a_failure_and_fires_on_new_snapshots(ray_session, tmp_path):
    csv = tmp_path / "data.csv"
    ingest_frame().to_csv(csv, index=False)
    fired, state = tmp_path / "fired.txt", str(tmp_path / "state")
    name = "test-ingest-schedule"
    handle = start_schedule(name, NS, FileSource(str(csv)), str(tmp_path / "snaps"), "* * * * * *",
                            state_dir=state, on_new_snapshot=RecordSnapshot(str(fired)), keep_snapshots=5)
    try:
        status = wait_for_actor(handle, lambda s: s["ok"] >= 2)
        assert status["active"] and status["schedule"] == "* * * * * *" and status["next_run"] > time.time() - 1
        first, second = status["history"][:2]
        assert set(first) >= {"time", "status", "rows", "fingerprint", "error"}
        assert (first["status"], first["rows"], first["new"], first["error"]) == ("ok", 40, True, None)
        assert second["fingerprint"] == first["fingerprint"] and second["new"] is False
        assert second["time"] - first["time"] >= 0.5  # one run per second, not back to back
        assert first["callback"] == {"status": "ok", "result": first["fingerprint"]} and second["callback"] is None

        csv.unlink()  # the source goes away for a while: runs fail, the schedule goes on
        status = wait_for_actor(handle, lambda s: s["failed"] >= 1)
        failed = [r for r in status["history"] if r["status"] == "failed"][0]
        assert "does not exist" in failed["error"] and failed["fingerprint"] is None and failed["rows"] is None
        ingest_frame(44, shift=1.0).to_csv(csv, index=False)  # it comes back, changed
        status = wait_for_actor(handle, lambda s: s["last_run"]["status"] == "ok" and s["last_run"]["rows"] == 44)
        changed = status["last_run"]
        assert changed["new"] and changed["fingerprint"] != first["fingerprint"]
        assert changed["callback"]["status"] == "ok"
        assert fired.read_text().split() == [first["fingerprint"], changed["fingerprint"]]  # once per new snapshot

        # Ray restarts a killed scheduler with the same arguments; it reloads its history from disk.
        before = ray.get(handle.status.remote())
        ray.kill(handle, no_restart=False)
        status = wait_for_actor(handle, lambda s: s["pid"] != before["pid"] and s["runs"] > before["runs"], timeout=60)
        assert status["restored"] and status["history"][0]["time"] == first["time"]
        assert fired.read_text().split() == [first["fingerprint"], changed["fingerprint"]]  # no repeat
    finally:
        assert stop_schedule(name, NS)
    with pytest.raises(ValueError):
        ray.get_actor(name, namespace=NS)
    after = schedule_status(name, NS, state)  # from disk once the actor is gone
    assert not after["running"] and after["runs"] >= status["runs"] and after["failed"] >= 1
    lines = [json.loads(line) for line in open(os.path.join(state, "runs.jsonl"))]
    assert len(lines) == after["runs"]
    n = len(lines)
    time.sleep(1.5)
    assert len(open(os.path.join(state, "runs.jsonl")).readlines()) == n  # stopped means no more runs
    assert not stop_schedule(name, NS)


def test_schedule_start_status_stop_from_the_cli(ray_session, tmp_path):
    csv = tmp_path / "data.csv"
    ingest_frame().to_csv(csv, index=False)
    base = [f"root={tmp_path / 'runs'}", f"data.path={csv}", "data.target=y", "ingest.actor_name=test-cli-ingest",
            f"cluster.namespace={NS}"]
    started = manage(make_config(base + ["action=schedule", "ingest.schedule='* * * * * */2'"]))
    try:
        assert started["actor"] == "test-cli-ingest" and started["schedule"] == "* * * * * */2"
        handle = ray.get_actor("test-cli-ingest", namespace=NS)
        wait_for_actor(handle, lambda s: s["ok"] >= 1)
        status = manage(make_config(base + ["action=schedule_status"]))
        assert status["running"] and status["ok"] >= 1 and status["last_run"]["rows"] == 40
        assert status["state_file"] == os.path.join(str(tmp_path / "runs"), "schedule", "test-cli-ingest", "runs.jsonl")
    finally:
        stopped = manage(make_config(base + ["action=schedule_stop"]))
    assert stopped["stopped"]
    status = manage(make_config(base + ["action=schedule_status"]))
    assert not status["running"] and status["ok"] >= 1
    listing = manage(make_config(base + ["action=snapshots"]))
    assert len(listing["snapshots"]) == 1 and listing["current"] == status["last_run"]["fingerprint"]


def test_run_with_a_schedule_keeps_ingesting_after_the_stages(ray_session, tmp_path):
    csv = tmp_path / "data.csv"
    ingest_frame().to_csv(csv, index=False)
    cfg = make_config([f"root={tmp_path / 'runs'}", f"data.path={csv}", "data.target=y", "stages=[ingest]",
                       "ingest.schedule='* * * * * */2'", "ingest.actor_name=test-run-ingest", f"cluster.namespace={NS}"])
    summary = ops.run(cfg, str(tmp_path / "out"))
    try:
        assert summary["status"] == "ok" and summary["schedule"]["actor"] == "test-run-ingest"
        status = wait_for_actor(ray.get_actor("test-run-ingest", namespace=NS), lambda s: s["ok"] >= 1)
        # The stage stored this content already: the scheduled run finds it, and it is not new.
        assert status["last_run"]["fingerprint"] == summary["data_fingerprint"] and status["last_run"]["new"] is False
    finally:
        assert stop_schedule("test-run-ingest", NS)


def quick_retrain(reason: str, labelled) -> dict:
    return {"version": "0", "promoted": False, "reason": reason}


def test_new_snapshot_asks_the_real_monitor_to_retrain(trained, tmp_path):
    """Slow (~40 s + the shared trained model): the real Monitor needs a registered champion to start."""
    from mlauto.monitor import start_monitor, stop_monitor

    cfg, _ = trained
    monitor_name, sched_name = "test-monitor-ingest", "test-ingest-retrain"
    callback = ops.RetrainOnNewSnapshot(monitor_name, NS)
    csv = tmp_path / "data.csv"
    ingest_frame().to_csv(csv, index=False)
    with pytest.raises(RuntimeError, match=f"no monitor actor '{monitor_name}'"):
        callback(ingest(FileSource(str(csv)), str(tmp_path / "s0")))
    monitor = start_monitor(context.loader_for(cfg),
                            MonitorConf(actor_name=monitor_name, window=50, cooldown_s=3600.0), NS, quick_retrain,
                            target=cfg.data.target)
    handle = None
    try:
        handle = start_schedule(sched_name, NS, FileSource(str(csv)), str(tmp_path / "snaps"), "* * * * * *",
                                state_dir=str(tmp_path / "state"), on_new_snapshot=callback)
        run = wait_for_actor(handle, lambda s: s["ok"] >= 1)["history"][0]
        fp = run["fingerprint"]
        assert run["new"] and run["callback"]["status"] == "ok"
        assert run["callback"]["result"] == {"monitor": monitor_name, "retrain_started": True,
                                             "reason": f"new snapshot {fp}"}
        wait_for_actor(handle, lambda s: s["ok"] >= 2)  # a later run finds the same data
        status = wait_for_actor(monitor, lambda s: s["retrains"] and not s["retrain_running"])
        assert [r["reason"] for r in status["retrains"]] == [f"new snapshot {fp}"]
        started = [e for e in status["events"] if e["event"] == "retrain_started"]
        assert [e["reason"] for e in started] == [f"new snapshot {fp}"]  # unchanged data asks nothing more
    finally:
        if handle is not None:
            stop_schedule(sched_name, NS)
        stop_monitor(monitor_name, NS)


def test_ingest_streams_blocks_to_one_snapshot_and_unifies_changing_types(ray_session, tmp_path):
    """A folder of CSVs lands as one Parquet file with every row in order, written block by block;
    when a later file's column type differs (int, then float), the rows are still all kept."""
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = [pd.DataFrame({"x": np.arange(i * 100, (i + 1) * 100), "c": [f"k{i}"] * 100}) for i in range(3)]
    for i, part in enumerate(parts):
        part.to_csv(folder / f"part-{i}.csv", index=False)
    snap = ingest(FileSource(str(folder)), str(tmp_path / "snaps"))
    stored = pd.read_parquet(snap.path)
    assert snap.n_rows == 300 and list(stored["x"]) == list(range(300)) and snap.columns == ["x", "c"]
    assert not [n for n in os.listdir(tmp_path / "snaps") if n.startswith(".ingest-")]  # no temp file left
    pd.DataFrame({"x": [0.5, 1.5], "c": ["z", "z"]}).to_csv(folder / "part-3.csv", index=False)
    mixed = ingest(FileSource(str(folder)), str(tmp_path / "snaps"))
    stored = pd.read_parquet(mixed.path)
    assert mixed.n_rows == 302 and stored["x"].iloc[-1] == 1.5 and mixed.fingerprint != snap.fingerprint
