"""Endpoint latency: mlauto's Ray Serve app against a bare FastAPI + uvicorn server, in one run,
repeated in interleaved rounds (figures are medians over rounds; ratios are per-round, then median).

Both servers load the same registered model and score through the same code
(:mod:`mlauto.serve.predict`), so the ratio is the cost of Ray Serve's ingress, the replica hop and
the monitor hand-off. Setups, all deployed at once behind the default ingress (HAProxy when
installed), each measured once per round in a rotating order:

- ``base``: bare FastAPI + uvicorn (one process)
- ``nobatch``: one replica, ``serve.batch_max_size=1``
- ``default``: one replica, ``@serve.batch`` 32 (the default path)
- ``monitor``: the default path + the monitor actor

Targets (issue 11): default p50 <= 1.3x base; batching gain (c16 default / c16 nobatch) >= 3x;
monitor p99 cost (monitor / default - 1) <= 5%. Also: the p99 of small requests from 8 clients while
one client sends large requests, over the same without them (target <= 2x).

    python bench/serve_latency.py [--rounds 5] [--requests 300] [--large 5000] [--seconds 8]
"""


import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

logger = logging.getLogger("bench")
SETUPS = ("base", "nobatch", "default", "monitor")
BASE_HANDLER: list[float] = []  # seconds inside the baseline's handler, per request (it runs in this process)


def baseline_app(bundle):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from mlauto.serve.predict import score
    from mlauto.serve.validation import InvalidRequest, RequestValidator

    app = FastAPI()
    validator = RequestValidator(bundle.schema)

    @app.middleware("http")
    async def timed(request: Request, call_next):  # the same place mlauto's `measure` middleware times
        start = time.perf_counter()
        response = await call_next(request)
        BASE_HANDLER.append(time.perf_counter() - start)
        return response

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        try:
            scored = score(bundle.pipeline, validator, await request.json())
        except InvalidRequest as exc:
            return JSONResponse({"detail": exc.detail}, status_code=422)
        return JSONResponse(scored.body(uuid.uuid4().hex, bundle.model_name, bundle.version))

    return app


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, min(len(values) - 1, int(round(q * len(values))) - 1))]


def request_records(frame, schema) -> list[dict]:
    """Held-out rows as ``/predict`` takes them: the served model's features only."""
    return frame[[c["name"] for c in schema]].to_dict(orient="records")


def post(session, url: str, body) -> None:
    r = session.post(f"{url}/predict", json=body, timeout=60)
    if r.status_code != 200:
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:500]}")


def handler_seconds(url: str) -> tuple[float, int]:
    """(sum of seconds, requests) spent inside the server's handler on ``/predict`` so far: the
    replica's ``mlauto_request_latency_seconds`` histogram, or the baseline's own middleware."""
    if url.count("/") == 2:  # the baseline: http://127.0.0.1:PORT
        return sum(BASE_HANDLER), len(BASE_HANDLER)
    total = count = 0.0
    for line in requests.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("mlauto_request_latency_seconds_") and '/predict"' in line:
            if line.startswith("mlauto_request_latency_seconds_sum"):
                total = float(line.rsplit(" ", 1)[1])
            elif line.startswith("mlauto_request_latency_seconds_count"):
                count = float(line.rsplit(" ", 1)[1])
    return total, int(count)


def sequential(url: str, records: list[dict], n: int) -> dict[str, float]:
    """p50/p99 of ``n`` sequential single-record POSTs, and the mean ms in the client and inside the
    server's handler (the difference is the HTTP path: proxy, sockets, the ASGI layers)."""
    session = requests.Session()
    for i in range(20):  # warm-up
        post(session, url, records[i % len(records)])
    latencies = []
    before = handler_seconds(url)
    for i in range(n):
        t0 = time.perf_counter()
        post(session, url, records[i % len(records)])
        latencies.append((time.perf_counter() - t0) * 1000)
    after = handler_seconds(url)
    inside = (after[0] - before[0]) / max(1, after[1] - before[1]) * 1000
    return {"p50_ms": statistics.median(latencies), "p99_ms": percentile(latencies, 0.99),
            "mean_ms": statistics.fmean(latencies), "handler_ms": inside}


def concurrent(url: str, records: list[dict], n: int, clients: int) -> float:
    """Requests per second with ``clients`` threads, each with its own connection, one record each."""

    def worker(k: int) -> None:
        session = requests.Session()
        for i in range(k, n, clients):
            post(session, url, records[i % len(records)])

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return n / (time.perf_counter() - start)


def small_p99_with_large(url: str, records: list[dict], large: int, seconds: float, clients: int = 8
                         ) -> tuple[float, float, int]:
    """p99 (ms) of small requests from ``clients`` threads for ``seconds``, without and then with a
    client sending requests of ``large`` records back to back; and how many large ones were sent."""
    big = (records * (large // len(records) + 1))[:large]

    def phase(with_large: bool) -> tuple[list[float], int]:
        stop = threading.Event()
        latencies: list[float] = []
        sent = [0]

        def small(k: int) -> None:
            session = requests.Session()
            i = k
            while not stop.is_set():
                t0 = time.perf_counter()
                r = session.post(f"{url}/predict", json=records[i % len(records)], timeout=60)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code < 500, r.text
                i += clients

        def heavy() -> None:
            session = requests.Session()
            while not stop.is_set():
                r = session.post(f"{url}/predict", json=big, timeout=120)
                assert r.status_code == 200, r.text[:300]
                sent[0] += 1

        threads = [threading.Thread(target=small, args=(k,)) for k in range(clients)]
        if with_large:
            threads.append(threading.Thread(target=heavy))
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        return latencies, sent[0]

    alone, _ = phase(False)
    mixed, n_large = phase(True)
    return percentile(alone, 0.99), percentile(mixed, 0.99), n_large


def free_port() -> int:
    """A free local port: other benches and servers may hold the usual ones on a shared machine."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_baseline(bundle, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(baseline_app(bundle), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def trained_model(root: str):
    """Train the bench model (fast families, tiny budget) and make it the champion."""
    from mlauto import context, train
    from mlauto.cli import to_config
    from mlauto.config.store import compose
    from mlauto.track import CHAMPION, set_alias

    cfg = to_config(compose([f"root={root}", "models=fast", "tune.num_samples=2", "name=bench"]))
    trained = train.train(cfg, {})
    set_alias(context.tracking_uri(cfg), context.model_name(cfg), trained.tracked.version, CHAMPION)
    return cfg, trained


def deploy_setups(cfg, version: str, large: int) -> dict[str, str]:
    """The three Serve setups as three apps (one replica each), and the monitor; returns their URLs."""
    from mlauto import context
    from mlauto.config.schema import MonitorConf, ServeConf
    from mlauto.monitor import start_monitor
    from mlauto.serve import deploy

    loader = context.loader_for(cfg)
    start_monitor(loader, MonitorConf(actor_name="bench-monitor", window=50), "bench", target=cfg.data.target)
    common = {"host": "127.0.0.1", "port": free_port(), "max_records": max(large, 5000), "max_body_bytes": 64 << 20}
    return {
        "nobatch": deploy(loader, ServeConf(app_name="nobatch", route_prefix="/nobatch", batch_max_size=1, **common),
                          version),
        "default": deploy(loader, ServeConf(app_name="default", route_prefix="/default", **common), version),
        "monitor": deploy(loader, ServeConf(app_name="monitor", route_prefix="/monitor", **common), version,
                          {"name": "bench-monitor", "namespace": "bench"}),
    }


def report(rounds: list[dict[str, dict[str, float]]], large: list[tuple[float, float, int]], args) -> None:
    def med(setup: str, key: str) -> float:
        return statistics.median(r[setup][key] for r in rounds)

    def med_ratio(f) -> float:
        return statistics.median(f(r) for r in rounds)

    print(f"{len(rounds)} interleaved rounds; per round and setup {args.requests} sequential single-record "
          f"POSTs, then {args.requests} from 16 clients. Medians over rounds.")
    print(f"{'setup':10} {'p50 ms':>8} {'p99 ms':>8} {'c16 req/s':>10} {'p50/base':>9} {'p99/base':>9}")
    for s in SETUPS:
        print(f"{s:10} {med(s, 'p50_ms'):8.2f} {med(s, 'p99_ms'):8.2f} {med(s, 'c16'):10.1f} "
              f"{med_ratio(lambda r: r[s]['p50_ms'] / r['base']['p50_ms']):9.2f} "
              f"{med_ratio(lambda r: r[s]['p99_ms'] / r['base']['p99_ms']):9.2f}")
    print("where a sequential request's time goes (means over the requests, medians over rounds):")
    print(f"{'setup':10} {'client ms':>10} {'handler ms':>11} {'outside ms':>11}")
    for s in SETUPS:
        print(f"{s:10} {med(s, 'mean_ms'):10.2f} {med(s, 'handler_ms'):11.2f} "
              f"{med_ratio(lambda r: r[s]['mean_ms'] - r[s]['handler_ms']):11.2f}")
    p50 = med_ratio(lambda r: r["default"]["p50_ms"] / r["base"]["p50_ms"])
    gain = med_ratio(lambda r: r["default"]["c16"] / r["nobatch"]["c16"])
    cost = med_ratio(lambda r: r["monitor"]["p99_ms"] / r["default"]["p99_ms"] - 1)
    cost50 = med_ratio(lambda r: r["monitor"]["p50_ms"] / r["default"]["p50_ms"] - 1)
    print(f"default-path p50 / base: {p50:.2f}x (target <= 1.3x)")
    print(f"batching gain at 16 clients (default / nobatch): {gain:.2f}x (target >= 3x)")
    print(f"monitor cost: p99 {cost:+.1%} (target <= +5%), p50 {cost50:+.1%}")
    if large:
        ratio = statistics.median(b / a for a, b, _ in large)
        print(f"small-request p99, 8 clients, with / without a client sending {args.large}-record requests: "
              f"{ratio:.2f}x (target <= 2x; p99 ms without {statistics.median(a for a, _, _ in large):.1f}, "
              f"with {statistics.median(b for _, b, _ in large):.1f}; {sum(n for *_, n in large)} large requests)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--large", type=int, default=5000, help="records per large request (0: skip that part)")
    parser.add_argument("--seconds", type=float, default=8.0, help="each phase of the large-request part")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    import os

    import ray
    from ray import serve

    from mlauto.runtime import serve_ingress_env

    os.environ.update(serve_ingress_env("auto"))  # the default ingress: HAProxy when installed
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="bench")
    server = None
    rounds: list[dict[str, dict[str, float]]] = []
    large: list[tuple[float, float, int]] = []
    try:
        cfg, trained = trained_model(tempfile.mkdtemp(prefix="mlauto-bench-"))
        from mlauto import context

        bundle = context.loader_for(cfg)()
        records = request_records(trained.splits.test, bundle.schema)
        port = free_port()
        server = start_baseline(bundle, port)
        urls = {"base": f"http://127.0.0.1:{port}", **deploy_setups(cfg, trained.tracked.version, args.large)}
        for k in range(args.rounds):
            order = SETUPS[k % len(SETUPS):] + SETUPS[:k % len(SETUPS)]
            result: dict[str, dict[str, float]] = {}
            for s in order:
                result[s] = {**sequential(urls[s], records, args.requests),
                             "c16": concurrent(urls[s], records, args.requests, 16)}
            rounds.append(result)
            if args.large:
                large.append(small_p99_with_large(urls["default"], records, args.large, args.seconds))
            print(f"round {k + 1}/{args.rounds}: " + ", ".join(
                f"{s} p50 {result[s]['p50_ms']:.2f} ms c16 {result[s]['c16']:.0f}/s" for s in SETUPS), flush=True)
    finally:
        if server is not None:
            server.should_exit = True
        serve.shutdown()
        ray.shutdown()
    report(rounds, large, args)


if __name__ == "__main__":
    main()
