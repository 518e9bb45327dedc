"""A real two-node Ray cluster on one machine whose nodes share no disk (issue 10, point 6).

The head runs ``ray start --head --block``; the worker runs ``ray start --address=... --block`` inside
its own mount namespace (``unshare -m``, needs root), where a tmpfs hides the driver's ``local``
folder and only ``shared`` (standing in for NFS) and the Python environment stay visible. Both run
with ``RAY_AUTH_MODE=token``. Each is stopped with SIGTERM to its ``--block`` process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")


@dataclass
class TwoNodes:
    address: str  # host:port of the GCS
    local: Path  # hidden from the worker node
    shared: Path  # seen by both nodes
    env: dict[str, str]  # what a driver needs to reach the cluster


def _wait_nodes(address: str, env: dict[str, str], n: int, timeout_s: float = 90.0) -> None:
    code = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
            "print(sum(1 for x in ray.nodes() if x['Alive']))")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", code, address], env=env, capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(2)
    raise RuntimeError(f"the cluster at {address} did not reach {n} nodes in {timeout_s:.0f} s")


@pytest.fixture(scope="session")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("the worker node's own mount namespace needs root and unshare")
    base = tmp_path_factory.mktemp("cluster")
    local, shared = base / "local", base / "shared"
    local.mkdir()
    shared.mkdir()
    token = Path.home() / ".ray" / "auth_token"
    if not token.exists():  # `ray start --head` turns token auth on only when a token exists
        subprocess.run([RAY, "get-auth-token", "--generate"], check=True, capture_output=True)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                             f"--temp-dir={temp}", *common], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    script = (f"mount -t tmpfs tmpfs {local} && exec {RAY} start --address=127.0.0.1:{port} "
              + " ".join(common))
    worker = None
    try:
        _wait_nodes(f"127.0.0.1:{port}", env, 1)
        worker = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_nodes(f"127.0.0.1:{port}", env, 2)
        yield TwoNodes(f"127.0.0.1:{port}", local, shared, env)
    finally:
        for proc in (worker, head):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
