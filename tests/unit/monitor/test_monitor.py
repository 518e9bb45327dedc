"""Monitor parts without Ray: detector names, the traffic log's label join, labelled rows for retraining.
The monitor actor itself: tests/integration/test_monitor.py."""

import json

import numpy as np
import pandas as pd
import pytest

from mlauto.errors import ConfigError, DuplicateFeedback
from mlauto.monitor import make_detector


def test_unknown_detector_lists_valid_ones():
    with pytest.raises(ConfigError) as exc:
        make_detector("magic", np.zeros((10, 2)), 0.05)
    assert exc.value.key == "monitor.detector" and "ks" in str(exc.value)


def _log(url, keep=2):
    from mlauto.monitor.store import MonitorStore, Retention
    from mlauto.monitor.traffic import TrafficLog

    return TrafficLog(MonitorStore(url, "m", Retention(unlabelled_rows=keep)))


def test_traffic_log_joins_labels_once_and_keeps_labelled_rows(tmp_path):
    from mlauto.errors import DuplicateFeedback, UnknownRows
    from mlauto.monitor.performance import PerformanceTracker

    url = f"sqlite:///{tmp_path / 'monitor.sqlite'}"
    log, perf = _log(url), PerformanceTracker(window=4, min_accuracy=0.6)
    records = [{"x": 1.0, "c": "a"}, {"x": 2.0, "c": None}, {"x": 3.0, "c": "b"}, {"x": None, "c": "b"}]
    with log.store.transaction() as conn:
        log.add_served(conn, ["a:0", "a:1", "b:0", "c:0"], np.array([1, 0, 1, 1]), np.array([0.9, 0.8, 0.7, 0.6]),
                       records, "1")
    perf.add_confidence(np.array([0.9, 0.8, 0.7, 0.6]))

    def label(ids, labels):
        with log.store.transaction() as conn:
            return log.add_labels(conn, ids, labels)

    with pytest.raises(UnknownRows):
        label(["zzz:0"], [1])
    perf.add_outcomes(label(["a:0", "a:1"], [1, 0]))
    with pytest.raises(DuplicateFeedback):
        label(["a:0"], [1])
    with pytest.raises(DuplicateFeedback):
        label(["b:0", "b:0"], [1, 1])
    with pytest.raises(DuplicateFeedback):  # all or nothing: b:0 is not labelled by this refused batch
        label(["b:0", "a:1"], [1, 1])
    assert perf.labels_total == 2 and perf.accuracy == 1.0 and not perf.degraded()
    perf.add_outcomes(label(["b:0", "c:0"], [0, 0]))
    assert perf.accuracy == 0.5 and perf.degraded()  # full window below 0.6
    assert perf.status()["estimated_accuracy"] == pytest.approx(0.75)
    with log.store.transaction() as conn:
        assert log.prune(conn) == 0  # labelled rows are training data: never pruned
    reopened = _log(url)  # what a restarted monitor sees (its counters come from the saved state)
    frame = reopened.labelled("label")
    assert list(frame.columns) == ["x", "c", "label"] and list(frame["label"]) == [1, 0, 0, 0]
    assert list(frame["x"].fillna(-1)) == [1.0, 2.0, 3.0, -1] and list(frame["c"]) == ["a", None, "b", "b"]
    assert reopened.store.recount() == {"rows_joinable": 4, "labelled_rows": 4, "rows_seen": 4}
    with reopened.store.transaction() as conn:
        assert reopened.add_served(conn, ["d:0", "d:1", "d:2", "a:0"], np.array([1, 1, 1, 1]), None, None, "2") == 3
        assert reopened.prune(conn) == 1  # unlabelled rows beyond the newest 2 are forgotten
    with pytest.raises(UnknownRows), reopened.store.transaction() as conn:
        reopened.add_labels(conn, ["d:0"], [1])


def test_store_keeps_state_events_history_and_skips_corrupt_records(tmp_path):
    import sqlalchemy as sa

    from mlauto.monitor.store import MonitorStore, Retention, events, history, state

    url = f"sqlite:///{tmp_path / 'monitor.sqlite'}"
    store = MonitorStore(url, "m", Retention(events=150, history=150, retrains=2))
    other = MonitorStore(url, "other")  # a second monitor in the same database sees none of it
    with store.transaction() as conn:
        store.put_state(conn, {"counters": {"rows_seen": 5}, "last_test": None})
        store.add_events(conn, [{"time": float(i), "event": "drift", "i": i} for i in range(300)])
        store.add_history(conn, [{"step": i, "time": 1.0, "model_version": "3", "kind": "window",
                                  "values": {"min_p_val": 0.5}} for i in range(300)])
        for reason in ("a", "b", "c"):
            rid = store.add_retrain(conn, reason, None, 1.0)
            store.update_retrain(conn, rid, status="finished", handled=True, body={"promoted": False})
        removed = store.prune(conn)
    assert removed["events"] == 150 and removed["history"] == 150 and removed["retrains"] == 1
    assert [e["i"] for e in store.events(3)] == [297, 298, 299]  # the tail, oldest first
    assert store.history(1) == [{"step": 299, "time": 1.0, "model_version": "3", "kind": "window",
                                 "values": {"min_p_val": 0.5}}]
    assert [r["reason"] for r in store.retrains()] == ["b", "c"] and store.retrains()[0]["promoted"] is False
    assert other.events() == [] and other.load_state() == {}
    with store.engine.begin() as conn:  # torn writes: a value cut short, bad JSON in a row
        conn.execute(state.update().where(state.c.key == "counters").values(value='{"rows_se'))
        conn.execute(events.update().where(events.c.id == sa.select(sa.func.max(events.c.id)).scalar_subquery())
                     .values(body="not json"))
        conn.execute(history.update().where(history.c.step == 298).values(body="{"))
    assert store.load_state() == {"last_test": None}
    assert [e["i"] for e in store.events(3)] == [297, 298]
    assert [h["step"] for h in store.history(3)] == [297, 299]
    store.events(3)  # read again: still counted once
    assert store.corrupt_records == 3


def test_state_values_round_trip_through_json():
    from mlauto.monitor import state as codec
    from mlauto.monitor.label_drift import ErrorRateDetector
    from mlauto.monitor.performance import PerformanceTracker

    rows = np.arange(12, dtype=float).reshape(4, 3)
    buffer = codec.decode_buffer(json.loads(json.dumps(codec.encode_buffer([(rows, np.array(["a", 1, 2.5, None],
                                                                                             dtype=object))]))))
    assert np.array_equal(buffer[0][0], rows) and list(buffer[0][1]) == ["a", 1, 2.5, None]
    detector = ErrorRateDetector(0.1, reference_rows=100, warmup=10)
    detector.update(np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]))
    saved = json.loads(json.dumps(codec.encode_detector(detector)))
    restored = codec.decode_detector(saved, ErrorRateDetector(0.1, reference_rows=100, warmup=10))
    assert restored.status() == detector.status()
    perf = PerformanceTracker(window=3)
    perf.add_outcomes([True, False, True, True])
    again = PerformanceTracker(window=3)
    codec.restore_performance(json.loads(json.dumps(codec.encode_performance(perf))), again, rolling=True)
    assert again.status() == perf.status()
    fresh = PerformanceTracker(window=3)  # another model: the label count stays, its accuracy starts afresh
    codec.restore_performance(codec.encode_performance(perf), fresh, rolling=False)
    assert fresh.labels_total == 4 and fresh.accuracy is None


def test_state_url_defaults_to_sqlite_under_root_and_refuses_an_object_store(tmp_path):
    from mlauto.config.schema import MonitorConf
    from mlauto.monitor.store import state_url_for

    assert state_url_for(str(tmp_path), MonitorConf(actor_name="m")) == \
        f"sqlite:///{tmp_path}/monitor/m/monitor.sqlite"
    assert state_url_for("s3://b/runs", MonitorConf(persist=False)) is None
    assert state_url_for("s3://b/runs", MonitorConf(state_url="postgresql+psycopg://u@h/d")) == \
        "postgresql+psycopg://u@h/d"
    with pytest.raises(ConfigError) as exc:
        state_url_for("s3://b/runs", MonitorConf())
    assert exc.value.key == "monitor.state_url"


def test_history_entries_become_mlflow_metrics():
    from mlauto.monitor.history import entry, mlflow_metrics

    window = entry(150, "3", "window", {"min_p_val": 0.001, "threshold": 0.002, "is_drift": True,
                                        "prediction_drift": False})
    assert set(window) == {"step", "time", "model_version", "kind", "values"} and window["step"] == 150
    assert mlflow_metrics(window) == {"monitor.min_p_val": 0.001, "monitor.drift": 1.0, "monitor.prediction_drift": 0.0}
    labels = entry(200, "3", "labels", {"accuracy": 0.8, "cusum": None, "cusum_threshold": 4.0, "labels": 40})
    assert mlflow_metrics(labels) == {"monitor.accuracy": 0.8, "monitor.labels": 40.0}
    with pytest.raises(ValueError):
        entry(1, "3", "made-up", {})


def test_labelled_rows_split_into_training_rows_and_the_judging_window():
    from mlauto.retrain import split_labelled

    frame = pd.DataFrame({"x": range(120), "target": [0, 1] * 60})
    train, judge = split_labelled(frame, 50)
    assert list(train["x"]) == list(range(70)) and list(judge["x"]) == list(range(70, 120))  # newest judge
    train, judge = split_labelled(frame.head(30), 50)
    assert len(train) == 30 and judge is None  # too few labels: all train, the test split judges
    assert split_labelled(frame.head(0), 50) == (None, None)
