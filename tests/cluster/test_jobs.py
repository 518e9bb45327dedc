"""The quickstart submitted as a Ray job to the two-node cluster, in both storage modes (issue 10,
points 5 and 6): root on a folder bind-mounted into the worker's namespace (``ray job submit -- python
-m mlauto ...``) and root on an S3 endpoint (submitted by the launcher itself,
``cluster.address=http://HEAD:8265``), tracking on the MLflow server (PostgreSQL) in both.

``cluster.placement`` puts the Serve replica, the monitor and the retrain on the node labelled
``mlauto.io/role=worker``; trials land there because each 1-CPU trial takes a 1-CPU node and two run
at once. Ray's state API says where each ran. The champion is deliberately weak (a small sample with
shuffled labels); then the full data set replaces the source, shifted traffic makes the monitor
retrain, and the challenger, better beyond doubt, is promoted and served.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest
import requests

from tests.cluster.conftest import ROLE, job_env_json, node_ids
from tests.helpers import free_port, shutdown_serve

pytestmark = pytest.mark.cluster

PLACE = f"{{{ROLE}:worker}}"
WEAK_ROWS = 80


def _cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


def _weak_sample() -> pd.DataFrame:
    """A small sample with its labels shuffled: a champion trained on it is near chance."""
    frame = _cancer().sample(WEAK_ROWS, random_state=0).reset_index(drop=True)
    frame["target"] = np.random.default_rng(0).permutation(frame["target"].to_numpy())
    return frame


def _root(mode: str, two_nodes) -> str:
    if mode == "shared":
        return f"{two_nodes.shared}/runs-{uuid.uuid4().hex[:6]}"
    import boto3

    bucket = f"mlauto-cluster-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/runs"


def _overrides(mode: str, root: str, two_nodes, port: int) -> list[str]:
    return [
        "experiment=quickstart", "models=fast", f"name=cl-{mode}", f"root={root}", "data.source=file",
        f"data.path={root}/data/cancer.csv", "tracking=server", f"tracking.uri={two_nodes.tracking_uri}",
        "replay.enabled=false", "tune.num_samples=2", "tune.sample_sizes.fractions=[]", "monitor.retrain_num_samples=2",
        f"cluster.namespace=cl-{mode}", f"serve.app_name=cl-{mode}", f"serve.port={port}", "serve.blocking=false",
        "serve.poll_s=0.5", *(f"+cluster.placement.{c}={PLACE}" for c in ("serve", "monitor", "retrain")),
        # the monitor's rows, labels and state in the fixture's PostgreSQL, not on a node's disk
        f"monitor.state_url={two_nodes.postgres_url}", f"monitor.actor_name=monitor-{mode}",
        f"hydra.run.dir=/tmp/mlauto-cl-{mode}-{uuid.uuid4().hex[:6]}",
    ]


def _submit(mode: str, args: list[str], two_nodes) -> tuple[str, str]:
    """Submit the quickstart as a job; returns (job id, its log). Shared mode: the launcher submits
    itself (``cluster.address=http://...``); s3 mode: ``ray job submit``."""
    from ray.job_submission import JobSubmissionClient

    if mode == "s3":
        cmd = [sys.executable, "-m", "mlauto", *args, f"cluster.address={two_nodes.dashboard}"]
    else:
        cmd = [str(__import__("pathlib").Path(sys.executable).parent / "ray"), "job", "submit",
               f"--address={two_nodes.dashboard}", f"--runtime-env-json={job_env_json()}", "--",
               "python", "-m", "mlauto", *args, "cluster.address=auto"]
    out = subprocess.run(cmd, env=two_nodes.env, capture_output=True, text=True, timeout=420)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    client = JobSubmissionClient(two_nodes.dashboard)
    jobs = sorted((j for j in client.list_jobs() if j.entrypoint and f"name=cl-{mode}" in j.entrypoint),
                  key=lambda j: j.start_time or 0)
    assert jobs, log[-3000:]
    return jobs[-1].submission_id, log


def _nodes_of(dashboard: str, names: tuple[str, ...] = (), classes: tuple[str, ...] = (),
              tasks: tuple[str, ...] = ()) -> set[str]:
    """The nodes where actors of these names or class prefixes, or tasks of these names, ran (Ray's state API)."""
    from ray.util.state import list_actors, list_tasks

    found = set()
    for actor in list_actors(address=dashboard, detail=True, limit=10000, raise_on_missing_output=False):
        if (actor.name in names or any(actor.class_name.startswith(c) for c in classes)) and actor.node_id:
            found.add(actor.node_id)
    for task in list_tasks(address=dashboard, detail=True, limit=10000, raise_on_missing_output=False) if tasks else ():
        if task.name in tasks and task.node_id:
            found.add(task.node_id)
    return found


@pytest.fixture(scope="module")
def placements(driver) -> dict[str, set[str]]:
    """Component -> the nodes it ran on, over the runs of this module."""
    return {}


@pytest.mark.parametrize("mode", ["shared", "s3"])
def test_quickstart_job_serves_retrains_and_promotes(mode, two_nodes, driver, placements) -> None:
    from mlauto import storage
    from mlauto.monitor import stop_monitor
    from mlauto.monitor.replay import replay
    from ray.job_submission import JobSubmissionClient

    root, port = _root(mode, two_nodes), free_port()
    storage.write_csv(_weak_sample(), f"{root}/data/cancer.csv")
    job_id, log = _submit(mode, _overrides(mode, root, two_nodes, port), two_nodes)
    try:
        info = JobSubmissionClient(two_nodes.dashboard).get_job_info(job_id)
        assert info.status == "SUCCEEDED"
        env = info.runtime_env or {}
        assert str(env.get("working_dir", "")).startswith("gcs://"), env  # the working dir, uploaded
        assert {".venv", "runs"} <= set(env.get("excludes", [])), env
        url = f"http://127.0.0.1:{port}"
        health = requests.get(f"{url}/health", timeout=30).json()
        assert health["model_version"] == "1", health

        # New data arrived: the full data set, true labels. Traffic then shifts; drift triggers a retrain
        # on a fresh ingest of it, judged on the newest labelled rows against the weak champion.
        full = _cancer()
        storage.write_csv(full, f"{root}/data/cancer.csv")
        rows = full.sample(100, random_state=1)
        features = [c for c in full.columns if c != "target"]
        result = replay(url, rows[features], rows["target"].to_numpy(), full[features].std(), shift=3.0,
                        batch=10, timeout_s=300)
        retrain = result["retrain"]
        assert result["drift_count"] >= 1
        assert retrain["status"] == "finished", retrain
        assert retrain["reason"].startswith("drift"), retrain
        assert retrain["promoted"], retrain
        assert retrain["challenger_score"] > retrain["champion_score"]
        answer = requests.post(f"{url}/predict", json=rows[features].head(3).to_dict("records"), timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["version"] == str(retrain["version"]) != "1"

        dash = two_nodes.dashboard
        for component, where in {"trials": _nodes_of(dash, classes=("ImplicitFunc", "_trainable", "trainable")),
                                 "serve": _nodes_of(dash, classes=(f"ServeReplica:cl-{mode}",)),
                                 "monitor": _nodes_of(dash, names=(f"monitor-{mode}",)),
                                 # the retrain runs in a runner actor (mlauto.monitor.retrains)
                                 "retrain": _nodes_of(dash, classes=("RetrainRunner",))}.items():
            placements.setdefault(component, set()).update(where)
    finally:
        stop_monitor(f"monitor-{mode}", f"cl-{mode}")
        shutdown_serve()


def test_each_component_ran_on_the_worker(placements, two_nodes, driver) -> None:
    if not placements:
        pytest.skip("the job runs did not get as far as placement")
    worker = node_ids("worker")
    assert worker
    for component in ("trials", "serve", "monitor", "retrain"):
        assert placements.get(component, set()) & worker, (component, placements, worker)
