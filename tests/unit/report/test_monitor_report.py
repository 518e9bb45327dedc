"""The monitor report from a synthetic history: the split by kind is right, the page renders in a browser."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlauto.report import monitor
from tests.helpers import Dom, assert_all_rendered, rendered


def synthetic_history() -> list[dict]:
    """20 windows of 100 rows (drift from step 1200), labels every 200 rows with accuracy falling after the
    shift and a CUSUM that crosses its threshold, then a retrain, a rejection, a second retrain and a promotion."""
    out: list[dict] = []
    t0 = 1_700_000_000.0
    for i in range(1, 21):
        step = 100 * i
        drift = step >= 1200
        out.append({"step": step, "time": t0 + i, "model_version": "1", "kind": "window",
                    "values": {"min_p_val": 1e-6 if drift else 0.2 + 0.01 * i, "threshold": 0.05 / 4,
                               "is_drift": drift, "prediction_drift": {"is_drift": drift, "p_val": 0.01}}})
        if i % 2 == 0:
            out.append({"step": step, "time": t0 + i + 0.5, "model_version": "1", "kind": "labels",
                        "values": {"accuracy": 0.9 if step < 1200 else 0.6, "cusum": max(0.0, (step - 1000) / 100),
                                   "cusum_threshold": 5.0, "labels": step // 2}})
    decisions = [(1200, "retrain_started", {"reason": "drift on x"}),
                 (1400, "rejection", {"version": "2", "challenger_score": 0.7, "champion_score": 0.8,
                                      "reason": "challenger worse"}),
                 (1600, "retrain_started", {"reason": "cusum"}),
                 (1800, "promotion", {"version": "3", "challenger_score": 0.92, "champion_score": 0.6,
                                      "reason": "challenger better"}),
                 (1800, "reference_updated", {"version": "3"})]
    for n, (step, kind, values) in enumerate(decisions):
        out.append({"step": step, "time": t0 + step / 100 + 0.7 + n / 100, "model_version": "1", "kind": kind, "values": values})
    out.append({"step": 2100, "time": t0 + 21.0, "model_version": "3", "kind": "window",
                "values": {"min_p_val": 0.4, "threshold": 0.0125, "is_drift": False, "prediction_drift": False}})
    return out


def test_timeline_splits_the_history_by_kind_in_step_order():
    history = synthetic_history()
    t = monitor.timeline(reversed(history))  # any order in, step order out
    assert len(t.windows) == 21 and t.windows["step"].is_monotonic_increasing
    assert t.windows["drift"].sum() == 9  # steps 1200..2000
    assert t.windows["prediction_drift"].tolist()[-2:] == [True, False]  # the dict's verdict, or the bool given
    assert len(t.labels) == 10 and set(t.labels["metric"]) == {"accuracy"}
    assert t.labels["cusum"].max() == 10.0 and t.labels["cusum_threshold"].iloc[0] == 5.0
    assert t.events["kind"].tolist() == ["retrain_started", "rejection", "retrain_started", "promotion",
                                         "reference_updated"]
    promotion = t.events[t.events["kind"] == "promotion"].iloc[0]
    assert promotion["version"] == "3" and promotion["challenger_score"] == 0.92
    # regression feedback: rmse is the metric; entries without a kind are skipped; bad numbers become NaN
    t = monitor.timeline([{"step": 5, "kind": "labels", "values": {"rmse": 2.5, "cusum": "x"}}, {"step": 1}])
    assert t.labels["metric"].tolist() == ["rmse"] and t.labels["value"].tolist() == [2.5]
    assert math.isnan(t.labels["cusum"].iloc[0]) and t.windows.empty and t.events.empty


def test_monitor_report_draws_the_timeline_and_lists_the_decisions_in_a_browser(tmp_path):
    path = monitor.write(str(tmp_path / "monitor" / "report.html"), synthetic_history(), title="monitor <b>x</b>")
    text = Path(path).read_text()
    assert "<b>x</b>" not in text and 'src="http' not in text  # escaped; nothing external
    dom = rendered(path, tmp_path)
    assert dom.sections == ["summary", "timeline", "decisions", "windows"]
    assert not dom.skipped and not dom.failed
    assert_all_rendered(dom)
    assert [img["section"] for img in dom.images] == ["timeline"]
    assert dom.fact("model version") == "3" and dom.fact("windows tested") == "21"
    assert dom.fact("drift windows") == "9" and dom.fact("last rolling accuracy") == "0.6"
    assert dom.fact("promotions") == "1" and dom.fact("rejections") == "1" and dom.fact("retrains started") == "2"
    decisions = dom.texts("decisions")
    assert decisions.index("reference_updated") < decisions.index("promotion") < decisions.index("rejection")
    assert "challenger worse" in decisions


@pytest.mark.parametrize("history", [[], [{"step": 10, "time": 1.0, "model_version": "1", "kind": "labels",
                                           "values": {"accuracy": 0.8, "labels": 3}}]])
def test_an_empty_or_label_only_history_gives_notes_not_errors(history, tmp_path):
    dom = Dom(monitor.render(history, status={"model_version": "7", "rows_seen": 0}))
    assert dom.fact("model version") == "7" and not dom.failed
    assert "decisions" in dom.skipped
    if history:
        assert [img["section"] for img in dom.images] == ["timeline"]  # the panels without data say so
        assert dom.fact("last rolling accuracy") == "0.8"
    else:
        assert "timeline" in dom.skipped and not dom.images
