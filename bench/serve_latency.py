"""Endpoint latency: mlauto's Ray Serve app against a bare FastAPI + uvicorn server, in one run.

Both servers load the same registered model and score through the same code
(:func:`mlauto.serve.predict.score`), so the ratio is the cost of Ray Serve's proxy, the replica
hop and the monitor hand-off.

    python bench/serve_latency.py [--requests 500] [--batch 100]
"""


import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

logger = logging.getLogger("bench")


def baseline_app(bundle):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from mlauto.serve.predict import score
    from mlauto.serve.validation import InvalidRequest, RequestValidator

    app = FastAPI()
    validator = RequestValidator(bundle.schema)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        try:
            scored = score(bundle.pipeline, validator, await request.json())
        except InvalidRequest as exc:
            return JSONResponse({"detail": exc.detail}, status_code=422)
        return JSONResponse(scored.body(uuid.uuid4().hex, bundle.model_name, bundle.version))

    return app


def measure(url: str, records: list[dict], n: int, batch: int) -> dict[str, float]:
    session = requests.Session()
    for i in range(30):  # warm-up
        session.post(f"{url}/predict", json=records[i % len(records)], timeout=30).raise_for_status()
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        session.post(f"{url}/predict", json=records[i % len(records)], timeout=30).raise_for_status()
        latencies.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - start
    big = (records * (batch // len(records) + 1))[:batch]
    t0 = time.perf_counter()
    rounds = max(5, n // 50)
    for _ in range(rounds):
        session.post(f"{url}/predict", json=big, timeout=60).raise_for_status()
    batch_wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(0.95 * len(latencies)) - 1],
        "p99_ms": latencies[int(0.99 * len(latencies)) - 1],
        "req_per_s": n / wall,
        "req_per_s_c16": concurrent(url, records, n, 16),
        "rows_per_s_batched": rounds * batch / batch_wall,
    }


def concurrent(url: str, records: list[dict], n: int, clients: int) -> float:
    """Requests per second with ``clients`` threads, each with its own connection, one record each."""
    from concurrent.futures import ThreadPoolExecutor

    def worker(k: int) -> None:
        session = requests.Session()
        for i in range(k, n, clients):
            session.post(f"{url}/predict", json=records[i % len(records)], timeout=60).raise_for_status()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    import ray
    import uvicorn
    from ray import serve

    from mlauto import context, train
    from mlauto.cli import to_config
    from mlauto.config.schema import MonitorConf, ServeConf
    from mlauto.config.store import compose
    from mlauto.monitor import start_monitor, stop_monitor
    from mlauto.serve import deploy
    from mlauto.track import CHAMPION, set_alias

    root = tempfile.mkdtemp(prefix="mlauto-bench-")
    cfg = to_config(compose([f"root={root}", "models=fast", "tune.num_samples=2", "name=bench"]))
    from mlauto.runtime import serve_ingress_env

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="bench")
    server = None
    results: dict[str, dict[str, float]] = {}
    try:
        trained = train.train(cfg, {})
        set_alias(context.tracking_uri(cfg), context.model_name(cfg), trained.tracked.version, CHAMPION)
        loader = context.loader_for(cfg)
        records = trained.splits.test[trained.splits.features].to_dict(orient="records")

        server = uvicorn.Server(uvicorn.Config(baseline_app(loader()), host="127.0.0.1", port=8911,
                                               log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        results["bare FastAPI + uvicorn (baseline)"] = measure("http://127.0.0.1:8911", records, args.requests,
                                                               args.batch)
        version = trained.tracked.version
        ingresses = [("proxy", "Serve proxy")]
        if serve_ingress_env("auto"):
            ingresses.append(("haproxy", "HAProxy"))
        for n, (ingress, label) in enumerate(ingresses):
            if n:  # the ingress is chosen when Ray starts: restart it with that environment
                serve.shutdown()
                ray.shutdown()
                os.environ.update(serve_ingress_env(ingress))
                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                         namespace="bench")
            url = deploy(loader, ServeConf(app_name="bench", host="127.0.0.1", port=8912, batch_max_size=1), version)
            results[f"{label}, no batching, no monitor"] = measure(url, records, args.requests, args.batch)
            url = deploy(loader, ServeConf(app_name="bench", host="127.0.0.1", port=8912), version)
            results[f"{label}, @serve.batch 32, no monitor"] = measure(url, records, args.requests, args.batch)
            start_monitor(loader, MonitorConf(actor_name="bench-monitor", window=50), "bench", target=cfg.data.target)
            url = deploy(loader, ServeConf(app_name="bench", host="127.0.0.1", port=8912), version,
                         {"name": "bench-monitor", "namespace": "bench"})
            results[f"{label}, @serve.batch 32, + monitor"] = measure(url, records, args.requests, args.batch)
            stop_monitor("bench-monitor", "bench")
    finally:
        if server is not None:
            server.should_exit = True
        serve.shutdown()
        ray.shutdown()
    base = results["bare FastAPI + uvicorn (baseline)"]
    print(f"{args.requests} sequential single-record POSTs, then batches of {args.batch} rows; "
          f"{context.model_name(cfg)} ({trained.final.family})")
    print(f"{'setup':36} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'req/s':>7} {'req/s c16':>10} "
          f"{'rows/s x100':>12} {'p50/base':>9} {'c16/base':>9}")
    for name, r in results.items():
        print(f"{name:36} {r['p50_ms']:7.2f} {r['p95_ms']:7.2f} {r['p99_ms']:7.2f} {r['req_per_s']:7.1f} "
              f"{r['req_per_s_c16']:10.1f} {r['rows_per_s_batched']:12.0f} {r['p50_ms'] / base['p50_ms']:9.2f} "
              f"{r['req_per_s_c16'] / base['req_per_s_c16']:9.2f}")


if __name__ == "__main__":
    main()
