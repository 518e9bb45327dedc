"""The report a real training run writes: logged to MLflow, every figure rendered in a browser."""

from __future__ import annotations

import os

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
