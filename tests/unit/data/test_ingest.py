"""Ingestion config, the SQL source's picklable connection factory and cron schedules, without Ray.
Reading, snapshots and the scheduler actor: tests/integration/test_ingest.py."""

from __future__ import annotations

import pickle

import pytest

from mlauto import context
from mlauto.data import SQLSource
from mlauto.data.schedule import next_run
from mlauto.data.sources import SQLConnect
from mlauto.errors import ConfigError
from tests.helpers import ingest_frame, make_config, write_sqlite


def test_sql_connection_factory_is_picklable_and_dbapi(tmp_path):
    url = write_sqlite(tmp_path / "a.db", ingest_frame(4))
    connect = pickle.loads(pickle.dumps(SQLConnect(url)))
    conn = connect()
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM rows")
        assert cur.fetchone()[0] == 4
    finally:
        conn.close()


def test_sql_config_group_validates_and_builds_the_source(tmp_path, monkeypatch):
    write_sqlite(tmp_path / "shop.db", ingest_frame(10))
    monkeypatch.chdir(tmp_path)
    cfg = make_config(["data=sql", "data.url=sqlite:///shop.db", "data.table=rows", "data.target=y"])
    assert cfg.data.url == f"sqlite:///{tmp_path}/shop.db"  # relative file made absolute on the way in
    source = context.data_source(cfg)
    assert isinstance(source, SQLSource) and source.table == "rows" and source.query is None
    pg = make_config(["data=sql", "data.url=postgresql://u:pw@db.example.com:5432/shop", "data.query=SELECT 1",
                      "data.target=y"])
    assert pg.data.url == "postgresql://u:pw@db.example.com:5432/shop"
    assert isinstance(context.data_source(pg), SQLSource)


@pytest.mark.parametrize(
    "overrides,key,text",
    [
        (["data=sql", "data.table=rows", "data.target=y"], "data.url", "the sql source needs data.url"),
        (["data=sql", "data.url=sqlite:///a.db", "data.target=y"], "data.query/data.table", "exactly one"),
        (["data=sql", "data.url=sqlite:///a.db", "data.query=SELECT 1", "data.table=rows", "data.target=y"],
         "data.query/data.table", "not both"),
        (["data=sql", "data.url=shop.db", "data.table=rows", "data.target=y"], "data.url", "sqlite:///"),
        (["data.table=rows"], "data.source", "use data=sql"),
        (["ingest.schedule=every minute"], "ingest.schedule", "*/5 * * * *"),
        (["action=schedule"], "ingest.schedule", "action=schedule needs ingest.schedule"),
        (["ingest.keep_snapshots=0"], "ingest.keep_snapshots", ">= 1"),
        (["ingest.timezone=Mars/Base"], "ingest.timezone", "IANA"),
    ],
)
def test_bad_ingest_config_names_the_key(overrides, key, text):
    with pytest.raises(ConfigError) as exc:
        make_config(overrides)
    assert exc.value.key == key and text in str(exc.value)


def test_cron_schedules_with_seconds_and_time_zones():
    base = 1_800_000_000.0  # a whole minute in UTC
    assert next_run("* * * * * */10", base + 1) == base + 10
    assert next_run("*/5 * * * *", base + 1) == base + 300
    assert next_run("0 2 * * *", base, "UTC") - next_run("0 2 * * *", base, "Asia/Tokyo") in (9 * 3600, -15 * 3600)
