"""The report a real training run writes: logged to MLflow, every figure rendered in a browser."""

from __future__ import annotations

import os

import pytest

from tests.helpers import assert_all_rendered, rendered


def test_training_writes_the_report_and_logs_it_to_mlflow(trained, tmp_path):
    from mlflow import MlflowClient

    from mlauto import context, train

    cfg, result = trained
    assert result.report and os.path.exists(result.report)
    assert os.path.dirname(result.report) == os.path.join(cfg.root, "reports")
    assert train.training_summary(result, cfg)["report"] == result.report
    logged = MlflowClient(context.tracking_uri(cfg)).list_artifacts(result.tracked.run_id, "report")
    assert [a.path for a in logged] == [f"report/{os.path.basename(result.report)}"]
    dom = rendered(result.report, tmp_path)
    assert not dom.failed
    assert "profile" not in dom.skipped and "leaderboard" not in dom.skipped and "importance" not in dom.skipped
    assert_all_rendered(dom)
    assert dom.fact("best family") == result.final.family
    figures = {img["section"] for img in dom.images}
    assert figures >= {"profile", "time-vs-score", "confusion-matrix", "importance"}
    assert ("binary-curves" in figures) == (result.task == "binary")  # ROC / PR / calibration of the champion


def test_a_live_monitor_report_renders_over_http_and_from_the_command(trained, tmp_path):
    """A real monitor fed by a real endpoint: GET /report and action=monitor_report draw its history."""
    import dataclasses

    import requests
    from ray import serve

    from mlauto import context, ops
    from mlauto.config.schema import MonitorConf, ServeConf
    from mlauto.monitor import start_monitor, stop_monitor
    from mlauto.serve import deploy
    from tests.helpers import Dom, free_port

    cfg, result = trained
    name, namespace = "report-test-monitor", "mlauto-tests"
    start_monitor(context.loader_for(cfg), MonitorConf(actor_name=name, window=10), namespace,
                  target=cfg.data.target, state_dir=str(tmp_path / "monitor"))
    try:
        url = deploy(context.loader_for(cfg), ServeConf(app_name="report-app", host="127.0.0.1", port=free_port(),
                                                       route_prefix="/rep", monitor_flush_s=0.2),
                     result.tracked.version, {"name": name, "namespace": namespace})
        test = result.splits.test
        rows, labels = test[result.splits.features].head(40), test[result.splits.target].head(40).tolist()
        answer = requests.post(f"{url}/predict", data=rows.to_json(orient="records"), timeout=30,
                               headers={"Content-Type": "application/json"}).json()
        assert requests.post(f"{url}/feedback", json={"request_id": answer["request_id"], "labels": labels},
                             timeout=30).status_code == 200
        page = requests.get(f"{url}/report", timeout=60)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        path = tmp_path / "live.html"
        path.write_text(page.text)
        dom = rendered(str(path), tmp_path)
        assert_all_rendered(dom)
        assert [img["section"] for img in dom.images] == ["timeline"]
        assert int(dom.fact("windows tested")) == 4  # 40 rows in windows of 10
        assert float(dom.fact("last rolling accuracy")) == pytest.approx(
            sum(p == t for p, t in zip(answer["predictions"], labels)) / len(labels), abs=1e-3)
        # the command's way: the running actor, written to the run folder
        conf = dataclasses.replace(cfg, monitor=dataclasses.replace(cfg.monitor, actor_name=name),
                                   cluster=dataclasses.replace(cfg.cluster, namespace=namespace))
        written = ops.monitor_report(conf, str(tmp_path / "out" / "monitor_report.html"))
        assert Dom(open(written).read()).fact("windows tested") == "4"
    finally:
        serve.delete("report-app")
        stop_monitor(name, namespace)
