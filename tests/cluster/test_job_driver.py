"""A job's driver keeps its working directory when the job's first task reaches the worker node.

The driver of a submitted job runs on the head, in the job's unpacked ``working_dir``. The first task of
the job on another node makes that node's runtime-env agent unpack the same package; it deletes the
folder first if it is there (``overwrite=True``). Nodes on one machine that share a Ray temp dir share
that folder, so the driver's cwd was deleted under it, and its first ``import torch`` then died with
"Intel oneMKL FATAL ERROR: Cannot load .../libtorch_cpu.so" (MKL calls getcwd as it loads). The
fixture gives the worker its own temp dir, as another machine has: this test is the regression guard.
A fresh working dir per run: an agent unpacks a package only the first time it sees it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cluster.conftest import ROLE, node_ids

pytestmark = pytest.mark.cluster

PROBE = f"""
import os, ray
ray.init()
cwd = os.getcwd()
here = ray.get_runtime_context().get_node_id()

@ray.remote(num_cpus=0, label_selector={{"{ROLE}": "worker"}})
def node():
    return ray.get_runtime_context().get_node_id()

there = ray.get(node.remote())  # the worker node's agent sets up this job's runtime env now
print("NODES", here, there, flush=True)
print("CWD", cwd, os.path.exists("/proc/self/cwd"), os.readlink("/proc/self/cwd"), flush=True)
os.getcwd()  # FileNotFoundError when the folder was deleted under the driver
import torch  # MKL's loader needs the cwd: the crash the job cases hit
print("DRIVER_OK", torch.ones(2).sum().item(), flush=True)
"""


def _removals(two_nodes) -> list[str]:
    """The runtime-env agents' log lines that say they deleted an unpacked package (the nodes' temp dirs)."""
    lines = []
    for temp in (two_nodes.temp, *two_nodes.worker_temps):
        for log in Path(temp).glob("session_2*/logs/runtime_env*.log"):  # the agent's, and per job's setup
            lines += [f"{log}: {ln}" for ln in log.read_text(errors="replace").splitlines() if "Removing" in ln]
    return lines


def test_job_driver_keeps_its_cwd_when_a_task_runs_on_the_worker(two_nodes, driver, tmp_path) -> None:
    work = tmp_path / f"job-{uuid.uuid4().hex[:8]}"  # a package no agent has unpacked yet
    work.mkdir()
    (work / "probe.py").write_text(PROBE)
    ray_cli = str(Path(sys.executable).parent / "ray")
    out = subprocess.run([ray_cli, "job", "submit", f"--address={two_nodes.dashboard}",
                          f"--runtime-env-json={json.dumps({'working_dir': str(work)})}", "--", "python", "probe.py"],
                         env=two_nodes.env, capture_output=True, text=True, timeout=300)
    log = out.stdout + out.stderr
    if out.returncode != 0:
        print(log[-6000:], *_removals(two_nodes), sep="\n")  # pytest shows it with the failure
    assert out.returncode == 0, "the job's driver failed (its log is in the captured stdout)"
    assert "DRIVER_OK 2.0" in log, log[-4000:]
    here, there = next(line.split()[1:3] for line in log.splitlines() if line.startswith("NODES"))
    assert here in node_ids("head") and there in node_ids("worker"), (here, there)
