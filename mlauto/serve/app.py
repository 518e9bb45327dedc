"""The model server: Ray Serve with a FastAPI ingress, fed by a model loader passed in as an argument."""


import logging
import threading
import time
import uuid
from typing import Any

import numpy as np
import ray
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from mlauto.serve.predict import score
from mlauto.serve.validation import InvalidRequest, RequestValidator

logger = logging.getLogger(__name__)

DEPLOYMENT = "ModelServer"

api = FastAPI(
    title="mlauto model server",
    description="POST /predict with one record or a list of records keyed by feature name; "
    "GET /model for the feature schema.",
)


class MonitorSender:
    """Buffers served rows and ships them to the monitor actor without waiting on it.

    When the buffer is full, rows are dropped and counted, never silently.
    """

    def __init__(self, name: str, namespace: str, flush_s: float, max_buffer: int) -> None:
        self.name, self.namespace = name, namespace
        self.flush_s, self.max_buffer = flush_s, max_buffer
        self.sent = 0
        self.dropped = 0
        self._pending: list[tuple[np.ndarray, np.ndarray, list[str]]] = []
        self._n_pending = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="monitor-sender", daemon=True)
        self._thread.start()

    def add(self, features: np.ndarray, predictions: np.ndarray, row_ids: list[str]) -> None:
        with self._lock:
            if self._n_pending + len(features) > self.max_buffer:
                self.dropped += len(features)
                return
            self._pending.append((features, predictions, row_ids))
            self._n_pending += len(features)

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending, self._n_pending = self._pending, [], 0
        if not batch:
            return
        features = np.vstack([b[0] for b in batch])
        predictions = np.concatenate([b[1] for b in batch])
        row_ids = [r for b in batch for r in b[2]]
        try:
            # Looked up on every flush (one GCS call per flush_s): a cached handle to a replaced
            # monitor would swallow rows without an error.
            actor = ray.get_actor(self.name, namespace=self.namespace)
            actor.ingest.remote(features, predictions, row_ids)  # fire and forget
            sent, dropped = len(features), 0
        except Exception as exc:  # monitor absent or restarting: count the loss
            sent, dropped = 0, len(features)
            logger.warning("monitor %s unreachable, dropped %d row(s): %s", self.name, len(features), exc)
        with self._lock:
            self.sent += sent
            self.dropped += dropped

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        self.flush()


@serve.deployment(name=DEPLOYMENT, max_ongoing_requests=64, health_check_period_s=2.0)
@serve.ingress(api)
class ModelServer:
    """Serves one registered model version; ``reconfigure`` (user_config) swaps it."""

    def __init__(self, loader: Any, monitor: dict[str, Any] | None = None) -> None:
        self._loader = loader
        self.bundle: Any = None
        self.validator: RequestValidator | None = None
        self.served = 0
        self.errors = 0
        self.sender = (
            MonitorSender(monitor["name"], monitor["namespace"], monitor.get("flush_s", 0.5),
                          monitor.get("max_buffer", 10000))
            if monitor else None
        )

    def reconfigure(self, config: dict[str, Any]) -> None:
        version = config.get("version")
        if self.bundle is not None and version is not None and str(version) == self.bundle.version:
            return
        bundle = self._loader(version)
        self.validator = RequestValidator(bundle.schema)
        self.bundle = bundle
        logger.info("serving %s version %s", bundle.model_name, bundle.version)

    def _ensure_loaded(self) -> None:
        if self.bundle is None:  # deployed without user_config: serve the champion
            self.reconfigure({})

    @api.post("/predict")
    async def predict(self, request: Request) -> JSONResponse:
        self._ensure_loaded()
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": [{"loc": ["body"], "msg": "the body is not valid JSON"}]}, status_code=400)
        bundle = self.bundle
        try:
            scored = score(bundle.pipeline, self.validator, body)
        except InvalidRequest as exc:
            return JSONResponse({"detail": exc.detail}, status_code=422)
        except Exception as exc:
            self.errors += 1
            logger.exception("prediction failed")
            return JSONResponse({"detail": f"prediction failed: {exc}"}, status_code=500)
        request_id = uuid.uuid4().hex
        if self.sender is not None:
            self.sender.add(scored.features, scored.predictions,
                            [f"{request_id}:{i}" for i in range(len(scored.predictions))])
        self.served += len(scored.predictions)
        return JSONResponse(scored.body(request_id, bundle.model_name, bundle.version))

    @api.get("/health")
    async def health(self) -> dict[str, Any]:
        self._ensure_loaded()
        return {"status": "ok", "model_version": self.bundle.version, "rows_served": self.served,
                "replica": serve.get_replica_context().replica_id.unique_id}

    @api.get("/model")
    async def model(self) -> dict[str, Any]:
        self._ensure_loaded()
        return self.bundle.describe()

    @api.get("/drift")
    async def drift(self) -> JSONResponse:
        if self.sender is None:
            return JSONResponse({"detail": "this endpoint was deployed without a monitor"}, status_code=404)
        try:
            actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
            status = await actor.status.remote()
        except Exception as exc:
            return JSONResponse({"detail": f"monitor unavailable: {exc}"}, status_code=503)
        status["sender"] = {"sent": self.sender.sent, "dropped": self.sender.dropped}
        return JSONResponse(status)

    def check_health(self) -> None:
        if self.sender is not None and not self.sender.alive():
            raise RuntimeError("monitor sender thread died")

    def __del__(self) -> None:
        if getattr(self, "sender", None) is not None:
            self.sender.close()


def _http_address(host: str, port: int) -> tuple[str, int]:
    """Where Serve really listens: ``http_options`` only apply when Serve first starts."""
    try:
        from ray.serve.context import _get_global_client

        config = _get_global_client().http_config
    except Exception:  # private API moved: trust the caller
        return host, port
    if (config.host, config.port) != (host, port):
        logger.warning("Serve was already running on %s:%s; serve.host/serve.port (%s:%s) do not apply",
                       config.host, config.port, host, port)
    return config.host, config.port


def deploy(
    loader: Any,
    version: str | None,
    *,
    app_name: str,
    host: str,
    port: int,
    route_prefix: str = "/",
    num_replicas: int = 1,
    replica_cpus: float = 0.0,
    monitor: dict[str, Any] | None = None,
) -> str:
    """Start Serve if needed and (re)deploy the app serving ``version``; returns the base URL.

    Redeploying with another model version only changes ``user_config``.
    """
    serve.start(http_options={"host": host, "port": port})
    host, port = _http_address(host, port)
    app = ModelServer.options(
        num_replicas=num_replicas,
        ray_actor_options={"num_cpus": replica_cpus},
        user_config={"version": version},
    ).bind(loader, monitor)
    start = time.perf_counter()
    serve.run(app, name=app_name, route_prefix=route_prefix)
    url = f"http://{host}:{port}{route_prefix.rstrip('/')}"
    logger.info("serving %s version %s at %s (%.1fs)", app_name, version, url, time.perf_counter() - start)
    return url
