"""The worker node dies while it holds the monitor (issue 10, point 6): the monitor, placed there softly
(``cluster.placement.monitor``, a label selector with a fallback to any node) and restartable
(``max_restarts``), comes back on the head with its served rows and labels, because its state lives in
PostgreSQL (``monitor.state_url``), not on the dead node's disk. The worker is started again at the end,
so the rest of the tier keeps its two nodes.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from tests.cluster.conftest import ROLE, node_ids
from tests.helpers import make_config, wait_for_actor

pytestmark = pytest.mark.cluster

NAME, NAMESPACE, ACTOR = "cl-kill", "cl-kill", "kill-monitor"


@pytest.fixture(scope="module")
def champion(two_nodes, driver) -> str:
    """A registered champion for ``NAME`` on the tracking server, trained on the cluster (as a job)."""
    from mlflow.tracking import MlflowClient

    model = f"mlauto-{NAME}"
    if not MlflowClient(two_nodes.tracking_uri).search_model_versions(f"name = '{model}'"):
        # The root on the S3 endpoint (object storage, as a cloud cluster has it); the monitor's own state is
        # in PostgreSQL either way.
        import boto3

        bucket = f"mlauto-{NAME}-{uuid.uuid4().hex[:6]}".lower().replace("_", "-")
        boto3.client("s3").create_bucket(Bucket=bucket)
        root = f"s3://{bucket}/runs"
        cmd = [sys.executable, "-m", "mlauto", "experiment=quickstart", "models=fast", f"name={NAME}", f"root={root}",
               "tracking=server", f"tracking.uri={two_nodes.tracking_uri}", "stages=[ingest,prepare,tune]",
               "tune.num_samples=2", "tune.sample_sizes.fractions=[]", "replay.enabled=false",
               f"cluster.address={two_nodes.dashboard}", f"hydra.run.dir=/tmp/mlauto-{NAME}-{uuid.uuid4().hex[:6]}"]
        out = subprocess.run(cmd, env=two_nodes.env, capture_output=True, text=True, timeout=420)
        assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return model


def _node_of(name: str, dashboard: str) -> str | None:
    from ray.util.state import list_actors

    alive = [a for a in list_actors(address=dashboard, filters=[("name", "=", name)], detail=True,
                                    raise_on_missing_output=False)
             if a.state == "ALIVE"]
    return alive[0].node_id if alive else None


def test_monitor_comes_back_on_the_head_with_its_rows_and_labels(two_nodes, driver, champion) -> None:
    import ray
    from sklearn.datasets import load_breast_cancer

    from mlauto import ops
    from mlauto.monitor import stop_monitor
    from mlauto.track import BundleLoader

    cfg = make_config([
        "experiment=quickstart", f"name={NAME}", f"root={two_nodes.shared}/runs-{NAME}", "tracking=server",
        f"tracking.uri={two_nodes.tracking_uri}", f"monitor.state_url={two_nodes.postgres_url}",
        f"monitor.actor_name={ACTOR}", "monitor.retrain=false", "monitor.window=50",
        f"cluster.namespace={NAMESPACE}", f"+cluster.placement.monitor={{{ROLE}:worker}}"])
    worker, head = node_ids("worker"), node_ids("head")
    try:
        ops.start_monitoring(cfg)
        handle = ray.get_actor(ACTOR, namespace=NAMESPACE)
        assert _node_of(ACTOR, two_nodes.dashboard) in worker  # placed by its label

        bundle = BundleLoader(two_nodes.tracking_uri, champion, with_reference=False)()
        rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(130)
        rows.columns = [c.replace(" ", "_") for c in rows.columns]  # as the sample source names them
        X = bundle.pipeline.named_steps["prep"].transform(rows)
        ids = [f"r:{i}" for i in range(130)]
        ray.get(handle.ingest.remote(X, np.zeros(130), ids, None, rows.to_dict(orient="records")))
        ray.get(handle.feedback.remote(ids[:2], [0, 1]))
        before = ray.get(handle.status.remote())
        assert before["rows_seen"] == 130 and before["performance"]["labels_total"] == 2

        killed = time.monotonic()
        two_nodes.kill_worker()
        status = wait_for_actor(handle, lambda s: s["pid"] != before["pid"], timeout=240)
        back_after = time.monotonic() - killed
        assert _node_of(ACTOR, two_nodes.dashboard) in head, "the monitor did not move to the head"
        assert status["restored"], status
        for key in ("rows_seen", "tests_run", "drift_count"):
            assert status[key] == before[key], key
        assert status["performance"]["labels_total"] == 2 and status["performance"]["labelled_rows"] == 2
        ray.get(handle.feedback.remote([ids[2]], [1]))  # a row served on the dead node joins its label now
        assert ray.get(handle.status.remote())["performance"]["labels_total"] == 3
        print(f"monitor back on the head {back_after:.0f} s after its node died")
    finally:
        stop_monitor(ACTOR, NAMESPACE)
        if two_nodes.worker is None or two_nodes.worker.poll() is not None:
            two_nodes.start_worker()
