"""Fail fast on a cluster (issue 10, point 4): a node-local root or a SQLite tracking file on more than
one node stops the run before any work, in under 30 s, naming the key and what to use instead;
a folder both nodes see passes the probe."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.cluster


def _mlauto(cluster, *overrides: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "mlauto", "experiment=quickstart", "models=fast",
                          f"cluster.address={cluster.address}", "serve.blocking=false",
                          f"hydra.run.dir={cluster.local}/hydra-{time.time_ns()}", *overrides],
                         env=cluster.env, capture_output=True, text=True, timeout=120)
    return out, time.monotonic() - start


def test_node_local_root_fails_fast(two_nodes) -> None:
    # monitor.persist=false: the root alone is wrong here (a SQLite monitor state is refused first)
    out, seconds = _mlauto(two_nodes, f"root={two_nodes.local}/runs", "tracking.uri=http://127.0.0.1:9/unused",
                           "monitor.persist=false")
    assert out.returncode == 1, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert f"root={two_nodes.local}/runs is not visible from 1 of 2 Ray nodes" in log, log[-3000:]
    assert "root=s3://bucket/prefix" in log and "NFS" in log
    assert "stage ingest" not in log  # stopped before any work
    assert seconds < 30, seconds


def test_sqlite_tracking_refused_on_two_nodes_even_when_shared(two_nodes) -> None:
    out, seconds = _mlauto(two_nodes, f"root={two_nodes.shared}/runs")  # default tracking: SQLite under root
    assert out.returncode == 1, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert f"tracking.uri=sqlite:///{two_nodes.shared}/runs/mlflow.db is a SQLite file" in log, log[-3000:]
    assert "tracking=server" in log and "stage ingest" not in log
    assert seconds < 30, seconds


def test_shared_root_passes_the_probe(two_nodes) -> None:
    code = ("import ray, sys; from mlauto.runtime import check_cluster_storage; ray.init(address=sys.argv[1]); "
            "print('nodes', check_cluster_storage(sys.argv[2], 'http://127.0.0.1:9/unused'))")
    out = subprocess.run([sys.executable, "-c", code, two_nodes.address, f"{two_nodes.shared}/runs"],
                         env=two_nodes.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "nodes 2" in out.stdout, out.stderr[-3000:]
    assert not list((two_nodes.shared / "runs" / ".mlauto-probe").glob("*"))  # the sentinel is removed


def test_sqlite_monitor_state_refused_on_two_nodes_even_when_shared(two_nodes) -> None:
    """The monitor may restart on any node: its default SQLite file is refused like SQLite tracking."""
    out, seconds = _mlauto(two_nodes, f"root={two_nodes.shared}/runs", "tracking.uri=http://127.0.0.1:9/unused")
    assert out.returncode == 1, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert (f"monitor.state_url=sqlite:///{two_nodes.shared}/runs/monitor/mlauto-monitor/monitor.sqlite "
            "is a SQLite file") in log, log[-3000:]
    assert "postgresql+psycopg://" in log and "stage ingest" not in log
    assert seconds < 30, seconds
