"""Monitor parts without Ray: detector names, the traffic log's label join, labelled rows for retraining.
The monitor actor itself: tests/integration/test_monitor.py."""

import numpy as np
import pandas as pd
import pytest

from mlauto.errors import ConfigError, DuplicateFeedback
from mlauto.monitor import make_detector


def test_unknown_detector_lists_valid_ones():
    with pytest.raises(ConfigError) as exc:
        make_detector("magic", np.zeros((10, 2)), 0.05)
    assert exc.value.key == "monitor.detector" and "ks" in str(exc.value)


def test_traffic_log_joins_labels_once_and_keeps_labelled_rows(tmp_path):
    from mlauto.errors import DuplicateFeedback, UnknownRows
    from mlauto.monitor.performance import PerformanceTracker
    from mlauto.monitor.traffic import TrafficLog

    path = tmp_path / "traffic.sqlite"
    log, perf = TrafficLog(str(path), max_rows=2), PerformanceTracker(window=4, min_accuracy=0.6)
    records = [{"x": 1.0, "c": "a"}, {"x": 2.0, "c": None}, {"x": 3.0, "c": "b"}, {"x": None, "c": "b"}]
    log.add_served(["a:0", "a:1", "b:0", "c:0"], np.array([1, 0, 1, 1]), np.array([0.9, 0.8, 0.7, 0.6]),
                   records, "1")
    perf.add_confidence(np.array([0.9, 0.8, 0.7, 0.6]))
    with pytest.raises(UnknownRows):
        log.add_labels(["zzz:0"], [1])
    perf.add_outcomes(log.add_labels(["a:0", "a:1"], [1, 0]))
    with pytest.raises(DuplicateFeedback):
        log.add_labels(["a:0"], [1])
    with pytest.raises(DuplicateFeedback):
        log.add_labels(["b:0", "b:0"], [1, 1])
    with pytest.raises(DuplicateFeedback):  # all or nothing: b:0 is not labelled by this refused batch
        log.add_labels(["b:0", "a:1"], [1, 1])
    assert perf.labels_total == 2 and perf.accuracy == 1.0 and not perf.degraded()
    perf.add_outcomes(log.add_labels(["b:0", "c:0"], [0, 0]))
    assert perf.accuracy == 0.5 and perf.degraded()  # full window below 0.6
    assert perf.status()["estimated_accuracy"] == pytest.approx(0.75)
    assert log.prune() == 0  # labelled rows are training data: never pruned
    log.close()
    reopened = TrafficLog(str(path), max_rows=2)  # what a restarted monitor sees
    frame = reopened.labelled("label")
    assert list(frame.columns) == ["x", "c", "label"] and list(frame["label"]) == [1, 0, 0, 0]
    assert list(frame["x"].fillna(-1)) == [1.0, 2.0, 3.0, -1] and list(frame["c"]) == ["a", None, "b", "b"]
    assert reopened.counts() == {"rows_joinable": 4, "labelled_rows": 4}
    reopened.add_served(["d:0", "d:1", "d:2"], np.array([1, 1, 1]), None, None, "1")
    assert reopened.prune() == 1  # unlabelled rows beyond the newest max_rows (2) are forgotten
    with pytest.raises(UnknownRows):
        reopened.add_labels(["d:0"], [1])


def test_labelled_rows_split_into_training_rows_and_the_judging_window():
    from mlauto.retrain import split_labelled

    frame = pd.DataFrame({"x": range(120), "target": [0, 1] * 60})
    train, judge = split_labelled(frame, 50)
    assert list(train["x"]) == list(range(70)) and list(judge["x"]) == list(range(70, 120))  # newest judge
    train, judge = split_labelled(frame.head(30), 50)
    assert len(train) == 30 and judge is None  # too few labels: all train, the test split judges
    assert split_labelled(frame.head(0), 50) == (None, None)
