"""Soak: a steady request rate against the default path with the monitor attached, for some minutes;
reports the replica's and the monitor's resident memory (RSS) at the start, along the way and at the
end (target: flat within 10%), the latency percentiles, and the monitor-delivery counters.

    python bench/serve_soak.py [--minutes 5] [--rate 20] [--feedback 0.2]

``--feedback``: the share of requests whose label is sent to ``/feedback`` (so the traffic log's
labelled rows grow as in production).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve_latency import free_port, percentile, request_records, trained_model  # noqa: E402

logger = logging.getLogger("bench")


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def replica_pid(app: str) -> int:
    """The pid of the app's one replica: Ray titles its process ``ray::ServeReplica:<app>:<deployment>``."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(f"ServeReplica:{app}:" in part for part in proc.info["cmdline"] or []):
            pids.append(proc.pid)
    if len(pids) != 1:
        raise RuntimeError(f"expected one replica of {app}, found {pids}")
    return pids[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--feedback", type=float, default=0.2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    import os

    import ray
    from ray import serve

    from mlauto import context
    from mlauto.config.schema import MonitorConf, ServeConf
    from mlauto.monitor import start_monitor
    from mlauto.runtime import serve_ingress_env
    from mlauto.serve import deploy

    os.environ.update(serve_ingress_env("auto"))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="bench")
    samples: list[tuple[float, float, float]] = []
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    try:
        root = tempfile.mkdtemp(prefix="mlauto-soak-")
        cfg, trained = trained_model(root)
        loader = context.loader_for(cfg)
        monitor = start_monitor(loader, MonitorConf(actor_name="soak-monitor", window=50, retrain=False), "bench",
                                target=cfg.data.target, state_dir=os.path.join(root, "monitor"))
        url = deploy(loader, ServeConf(app_name="soak", host="127.0.0.1", port=free_port(), route_prefix="/soak"), None,
                     {"name": "soak-monitor", "namespace": "bench"})
        test = trained.splits.test
        records = request_records(test, loader().schema)
        labels = test[trained.splits.target].tolist()
        replica = replica_pid("soak")
        monitor_pid = ray.get(monitor.status.remote())["pid"]
        session = requests.Session()
        for i in range(50):  # warm-up, then the first sample
            session.post(f"{url}/predict", json=records[i % len(records)], timeout=30)
        samples.append((0.0, rss_mb(replica), rss_mb(monitor_pid)))
        start = time.perf_counter()
        duration, period = args.minutes * 60, 1.0 / args.rate
        next_sample, i = 30.0, 0
        while (now := time.perf_counter() - start) < duration:
            t0 = time.perf_counter()
            r = session.post(f"{url}/predict", json=records[i % len(records)], timeout=30)
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 200 and args.feedback and i % max(1, round(1 / args.feedback)) == 0:
                session.post(f"{url}/feedback", json={"request_id": r.json()["request_id"],
                                                      "label": labels[i % len(labels)]}, timeout=30)
            i += 1
            if now >= next_sample:
                samples.append((now, rss_mb(replica), rss_mb(monitor_pid)))
                print(f"{now:6.0f}s replica {samples[-1][1]:.0f} MB, monitor {samples[-1][2]:.0f} MB, "
                      f"{i} requests", flush=True)
                next_sample += 30.0
            time.sleep(max(0.0, period - (time.perf_counter() - t0)))
        time.sleep(1.0)
        samples.append((time.perf_counter() - start, rss_mb(replica), rss_mb(monitor_pid)))
        drift = requests.get(f"{url}/drift", timeout=30).json()
    finally:
        serve.shutdown()
        ray.shutdown()
    (_, r0, m0), (t1, r1, m1) = samples[1] if len(samples) > 2 else samples[0], samples[-1]
    print(f"{sum(statuses.values())} requests in {t1:.0f}s ({sum(statuses.values()) / t1:.1f}/s), statuses {statuses}")
    print(f"latency p50 {statistics.median(latencies):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms")
    print(f"replica RSS {samples[0][1]:.0f} MB at start, {r0:.0f} MB after warm-up (30 s), {r1:.0f} MB at end: "
          f"{r1 / r0 - 1:+.1%} (target within 10%)")
    print(f"monitor RSS {samples[0][2]:.0f} MB at start, {m0:.0f} MB after warm-up (30 s), {m1:.0f} MB at end: "
          f"{m1 / m0 - 1:+.1%} (target within 10%)")
    print(f"monitor rows seen {drift['rows_seen']}, sender {drift['sender']}")


if __name__ == "__main__":
    main()
