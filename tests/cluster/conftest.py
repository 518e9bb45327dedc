"""One real two-node Ray cluster on one machine whose nodes share no disk (issue 10, point 6), for the
whole cluster tier: the storage probe, the quickstart submitted as a job in both storage modes, and
the node-kill test.

The head runs ``ray start --head --block`` (dashboard on, for job submission); the worker runs
``ray start --address=... --block`` inside its own mount namespace (``unshare -m``, needs root). There
a tmpfs hides the folder that holds the driver's ``local`` and ``shared`` folders, and ``shared`` alone
is bind-mounted back (standing in for NFS); the Python environment stays visible, standing in for the
cluster's image. Beside it run an S3 endpoint (moto, on 127.0.0.1, its variables in both nodes'
environment as a cloud node has them), PostgreSQL and an MLflow tracking server on it, whose
artifacts live in ``local``: the worker reaches them only through the server. Nodes carry the label
``mlauto.io/role`` (``head`` or ``worker``) that ``cluster.placement`` selects. Every process started
here is stopped at teardown, by process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
ROLE = "mlauto.io/role"


def _stop(proc: subprocess.Popen | None, timeout_s: float = 30.0) -> None:
    """SIGTERM a process group this fixture started, SIGKILL it if it outlives ``timeout_s``."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@dataclass
class TwoNodes:
    address: str  # host:port of the GCS
    dashboard: str  # http://127.0.0.1:PORT, where jobs are submitted
    local: Path  # hidden from the worker node
    shared: Path  # seen by both nodes
    env: dict[str, str]  # what a driver needs to reach the cluster (and the S3 endpoint)
    tracking_uri: str  # the MLflow server (PostgreSQL backend)
    postgres_url: str  # its database: the monitor's state goes there too
    base: Path = field(repr=False, default=Path())
    hold: Path = field(repr=False, default=Path())
    temp: str = field(repr=False, default="")
    worker: subprocess.Popen | None = field(repr=False, default=None)
    worker_temps: list[str] = field(repr=False, default_factory=list)  # one Ray temp dir per worker start

    def start_worker(self) -> None:
        """The worker node, in its own mount namespace: only ``shared`` of ``base`` is visible there."""
        port = self.address.rsplit(":", 1)[1]
        # Its own Ray temp dir, as on another machine. Without one a worker node takes the head's (Ray reads
        # it from the GCS), so both runtime-env agents unpack a job's working_dir to the same folder, and
        # the worker's, creating it for the job's first task there, deletes and re-extracts it (overwrite):
        # the job's driver, on the head, is left in a deleted cwd, and its first `import torch` dies with
        # "Intel oneMKL FATAL ERROR: Cannot load .../libtorch_cpu.so" (MKL needs getcwd; test_job_driver.py).
        temp = tempfile.mkdtemp(prefix="ray-w-", dir="/tmp")  # short: socket paths must fit 107 bytes
        self.worker_temps.append(temp)
        script = (f"mount --bind {self.shared} {self.hold} && mount -t tmpfs tmpfs {self.base} && "
                  f"mkdir {self.shared} && mount --move {self.hold} {self.shared} && "
                  f"exec {RAY} start --address=127.0.0.1:{port} --block --num-cpus 1 --disable-usage-stats "
                  f"--temp-dir={temp} --labels {ROLE}=worker --dashboard-agent-listen-port={free_port()}")
        self.worker = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                       env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        wait_nodes(self.address, self.env, 2)

    def kill_worker(self) -> None:
        """The worker node dies at once (SIGKILL to its raylet, workers and all)."""
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=30)


def alive_nodes(address: str, env: dict[str, str]) -> int | None:
    code = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
            "print(sum(1 for x in ray.nodes() if x['Alive']))")
    out = subprocess.run([sys.executable, "-c", code, address], env=env, capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    return int(lines[-1]) if out.returncode == 0 and lines and lines[-1].isdigit() else None


def wait_nodes(address: str, env: dict[str, str], n: int, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive_nodes(address, env) == n:
            return
        time.sleep(1)
    raise RuntimeError(f"the cluster at {address} did not reach {n} nodes in {timeout_s:.0f} s")


def _wait_dashboard(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:  # it answers (401 without the token): up
            return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"the Ray dashboard at {url} did not answer in {timeout_s:.0f} s")


def _wait_job_agent(url: str, env: dict[str, str], timeout_s: float = 180.0) -> None:
    """Submit a no-op job until one succeeds: the dashboard answers before its job agent can take jobs
    ("No available agent to submit job")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run([RAY, "job", "submit", f"--address={url}", "--", "true"], env=env,
                             capture_output=True, text=True)
        if out.returncode == 0:
            return
        time.sleep(2)
    raise RuntimeError(f"no job agent at {url} took a job in {timeout_s:.0f} s")


@pytest.fixture(scope="session")
def two_nodes(moto_server: dict[str, str], postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    from mlauto.track.server import MlflowServer

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("the worker node's own mount namespace needs root and unshare")
    base = tmp_path_factory.mktemp("cluster")
    local, shared, hold = base / "local", base / "shared", Path(tempfile.mkdtemp(prefix="mlauto-hold-"))
    local.mkdir()
    shared.mkdir()
    token = Path.home() / ".ray" / "auth_token"
    if not token.exists():  # `ray start --head` turns token auth on only when a token exists
        subprocess.run([RAY, "get-auth-token", "--generate"], check=True, capture_output=True)
    # moto_server put the AWS variables in os.environ: both nodes inherit them, as cloud nodes have theirs
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # the nodes' `python` is the environment mlauto is installed in, as in a cluster's image (a job's
    # entrypoint `python -m mlauto` runs with the node's PATH)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for key in ("RAY_ADDRESS", "RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED"):
        env.pop(key, None)
    port, dash = free_port(), free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    mlflow = MlflowServer(postgres.url, str(local / "mlartifacts"), free_port())
    head = None
    nodes = TwoNodes(f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", local, shared, env, "", postgres.url,
                     base=base, hold=hold, temp=temp)
    try:
        mlflow.start(timeout_s=300, log=str(local / "mlflow.log"))  # slow to start on a busy machine
        nodes.tracking_uri = mlflow.url
        head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=true",
                                 "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--temp-dir={temp}",
                                 "--block", "--num-cpus", "1", "--disable-usage-stats", "--labels", f"{ROLE}=head",
                                 # the agent's HTTP port (52365 by default) takes the jobs: one per node
                                 f"--dashboard-agent-listen-port={free_port()}"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_nodes(nodes.address, env, 1)
        _wait_dashboard(nodes.dashboard)
        _wait_job_agent(nodes.dashboard, env)
        nodes.start_worker()
        yield nodes
    finally:
        _stop(nodes.worker)
        _stop(head)
        mlflow.stop()
        for folder in (temp, *nodes.worker_temps, hold):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def driver(two_nodes: TwoNodes) -> Iterator[None]:
    """This test process as a Ray driver of the cluster, for Ray's state API and actor handles."""
    import ray
    from ray._private.authentication.authentication_token_setup import _enable_token_auth

    # Ray caches the auth mode when it loads (the root conftest imported it already): RAY_AUTH_MODE=token
    # now, and Ray's config reread, as `ray.init()` does for a local cluster.
    _enable_token_auth()
    ray.init(address=two_nodes.address, namespace="mlauto-cluster-tests", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def node_ids(role: str) -> set[str]:
    """The alive nodes with ``mlauto.io/role=role`` (the driver fixture must be connected)."""
    import ray

    return {n["NodeID"] for n in ray.nodes() if n["Alive"] and n.get("Labels", {}).get(ROLE) == role}


def job_env_json(extra: dict[str, str] | None = None) -> str:
    """A ``--runtime-env-json`` that carries this working dir without the venv, runs and outputs."""
    return json.dumps({"working_dir": str(REPO), "excludes": [".venv", "runs", ".git", "outputs", "**/__pycache__"],
                       **({"env_vars": extra} if extra else {})})
