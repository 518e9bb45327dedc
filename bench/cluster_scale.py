"""Trials per minute of one fixed search on one 1-CPU Ray node vs two 1-CPU nodes (issue 10, point 7).

Both setups run in the same invocation: a head started with ``ray start --head --num-cpus 1``, then the
same plus a worker node started with ``ray start --address=...`` in its own mount namespace (``unshare -m``,
root), as tests/cluster does. The search is fixed: ``--trials`` trials of a scikit-learn gradient
boosting fit sized to take about 2 s or more each (the grid is the same every time, no early stopping),
so fixed costs (Tune's start, scheduling) do not decide the ratio. Target: two nodes >= 1.8x one node.

    sudo -E .venv/bin/python bench/cluster_scale.py [--trials 12]

Prints trials/min for each setup and the ratio. On a machine other work shares, both figures move:
run it twice.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _trainable(config: dict) -> None:
    """One trial: a fixed-size gradient boosting fit, single-threaded (about 2 s on one idle core)."""
    import ray
    from ray import tune
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier

    start = time.perf_counter()
    X, y = make_classification(n_samples=4000, n_features=20, random_state=config["seed"])
    model = GradientBoostingClassifier(n_estimators=config["n_estimators"], max_depth=3, random_state=0).fit(X, y)
    tune.report({"score": float(model.score(X, y)), "fit_s": time.perf_counter() - start,
                 "node": ray.get_runtime_context().get_node_id()[:8]})


def search(address: str, trials: int) -> None:
    """Run the fixed search on the cluster at ``address``; print ``RESULT <trials> <seconds>``."""
    import ray
    from ray import tune

    ray.init(address=address, log_to_driver=False)
    space = {"seed": tune.grid_search(list(range(trials))), "n_estimators": 120}
    start = time.perf_counter()
    results = tune.Tuner(tune.with_resources(_trainable, {"cpu": 1}), param_space=space,
                         tune_config=tune.TuneConfig(reuse_actors=True),
                         run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="scale-"), verbose=0)).fit()
    seconds = time.perf_counter() - start
    done = [r.metrics for r in results if r.error is None]
    # where the time goes: each trial's own fit time, per node, against the search's wall time
    per_node: dict[str, list[float]] = {}
    for metrics in done:
        per_node.setdefault(metrics["node"], []).append(metrics["fit_s"])
    for node, fits in sorted(per_node.items()):
        print(f"  node {node}: {len(fits)} trials, fit {sum(fits):.1f} s in all, {sum(fits) / len(fits):.2f} s each",
              flush=True)
    busy = max((sum(f) for f in per_node.values()), default=0.0)
    print(f"  wall {seconds:.1f} s, busiest node fitting {busy:.1f} s, the rest ({seconds - busy:.1f} s) Tune's "
          "start, scheduling, reporting and shutdown", flush=True)
    print(f"RESULT {len(done)} {seconds:.2f} {sum(m['fit_s'] for m in done):.2f}", flush=True)
    ray.shutdown()


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _alive(address: str, env: dict[str, str]) -> int:
    code = "import ray,sys; ray.init(address=sys.argv[1]); print(sum(n['Alive'] for n in ray.nodes()))"
    out = subprocess.run([sys.executable, "-c", code, address], env=env, capture_output=True, text=True)
    lines = out.stdout.split()
    return int(lines[-1]) if out.returncode == 0 and lines and lines[-1].isdigit() else 0


def _wait(address: str, env: dict[str, str], n: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _alive(address, env) == n:
            return
        time.sleep(1)
    raise RuntimeError(f"{n} node(s) did not come up at {address}")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def measure(nodes: int, trials: int, env: dict[str, str]) -> tuple[int, float, float]:
    """Start a cluster of ``nodes`` 1-CPU nodes, run the search from a fresh driver, stop the cluster.
    Returns (trials done, wall seconds, the trials' fit seconds summed over nodes)."""
    port, temp = _free_port(), tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    worker_temp = tempfile.mkdtemp(prefix="ray-w-", dir="/tmp")  # its own, as on another machine
    hidden = tempfile.mkdtemp(prefix="scale-hidden-")  # the worker sees a tmpfs here, as in tests/cluster
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    procs = [_start([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}",
                     *common], env)]
    try:
        address = f"127.0.0.1:{port}"
        _wait(address, env, 1)
        if nodes == 2:
            script = (f"mount -t tmpfs tmpfs {hidden} && exec {RAY} start --address={address} "
                      f"--temp-dir={worker_temp} {' '.join(common)}")
            procs.append(_start(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env))
            _wait(address, env, 2)
        out = subprocess.run([sys.executable, __file__, "--search", address, "--trials", str(trials)], env=env,
                             capture_output=True, text=True, timeout=1800)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
        if line is None:
            raise RuntimeError(f"the search failed: {out.stderr[-2000:]}")
        print("\n".join(ln for ln in out.stdout.splitlines() if ln.startswith("  ")), flush=True)
        done, seconds, fitting = line.split()[1:]
        return int(done), float(seconds), float(fitting)
    finally:
        _stop(procs[::-1])
        for folder in (temp, worker_temp, hidden):
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--search", help=argparse.SUPPRESS)  # internal: run the search as a driver
    args = parser.parse_args()
    if args.search:
        search(args.search, args.trials)
        return
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        sys.exit("the worker node's own mount namespace needs root and unshare")
    if not (Path.home() / ".ray" / "auth_token").exists():
        subprocess.run([RAY, "get-auth-token", "--generate"], check=True, capture_output=True)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    rates, busy = {}, {}
    for nodes in (1, 2):
        done, seconds, fitting = measure(nodes, args.trials, env)
        rates[nodes], busy[nodes] = 60.0 * done / seconds, fitting / seconds
        print(f"{nodes} x 1-CPU node(s): {done} trials in {seconds:.1f} s = {rates[nodes]:.1f} trials/min", flush=True)
    print(f"ratio two nodes / one node: {rates[2] / rates[1]:.2f}x (target >= 1.8x)")
    # A trial's fit takes longer when neighbours load the machine, and the load moves between the two
    # setups: fit seconds per wall second is the same ratio with each setup's own trial length.
    print(f"fit-normalised ratio (fit seconds per wall second): {busy[2] / busy[1]:.2f}x")


if __name__ == "__main__":
    main()
