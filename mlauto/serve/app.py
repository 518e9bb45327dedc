"""The model server: Ray Serve with a FastAPI ingress, fed by a model loader passed in as an argument."""


import asyncio
import logging
import secrets
import threading
import time
import uuid
from typing import Any

import numpy as np
import ray
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from mlauto.config.schema import ServeConf
from mlauto.errors import DuplicateFeedback, UnknownRows
from mlauto.serve.metrics import CONTENT_TYPE, replica_metrics
from mlauto.serve.predict import Scored, score_many
from mlauto.serve.sender import MonitorSender
from mlauto.serve.validation import InvalidRequest, RequestValidator

logger = logging.getLogger(__name__)

DEPLOYMENT = "ModelServer"

api = FastAPI(
    title="mlauto model server",
    description="POST /predict with one record or a list of records keyed by feature name; "
    "POST /feedback with a request id and its true label(s); GET /model for the feature schema.",
)
# The ``serve`` keys the app itself reads (the rest say where it listens: :func:`deploy`'s business).
APP_KEYS = ("num_replicas", "replica_cpus", "max_body_bytes", "admin_token", "protect_predict", "batch_max_size",
            "batch_wait_s", "poll_s", "autoscaling", "monitor_flush_s", "monitor_buffer")


@api.middleware("http")
async def measure(request: Request, call_next: Any) -> Response:
    """Count and time every request (the app is pickled by value into replicas: no shared globals here)."""
    metrics = replica_metrics()
    start = time.perf_counter()
    response = await call_next(request)
    route = request.url.path
    metrics.requests.labels(route, str(response.status_code)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - start)
    return response


@serve.deployment(name=DEPLOYMENT, max_ongoing_requests=64, health_check_period_s=2.0)
@serve.ingress(api)
class ModelServer:
    """Serves the champion (following its alias in place) or a pinned version (``user_config``)."""

    def __init__(self, loader: Any, conf: ServeConf, monitor: dict[str, str] | None = None) -> None:
        """``conf``: the ``serve`` section; ``monitor``: ``{"name", "namespace"}`` of the monitor actor
        that gets the traffic, or None."""
        self._score_batch.set_max_batch_size(int(conf.batch_max_size))
        self._score_batch.set_batch_wait_timeout_s(float(conf.batch_wait_s))
        self.max_body_bytes = conf.max_body_bytes
        self.admin_token = conf.admin_token
        self.protect_predict = conf.protect_predict
        self._loader = loader
        # (bundle, validator), replaced in one assignment so a request never mixes two models.
        self._current: tuple[Any, RequestValidator] | None = None
        self._pinned: str | None = None
        self._swap_lock = threading.Lock()
        self.poll_s = conf.poll_s
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
        self.served = 0
        self.errors = 0
        self.sender = (
            MonitorSender(monitor["name"], monitor["namespace"], conf.monitor_flush_s, conf.monitor_buffer)
            if monitor else None
        )

    @property
    def bundle(self) -> Any:
        return self._current[0] if self._current else None

    @property
    def validator(self) -> RequestValidator | None:
        return self._current[1] if self._current else None

    def reconfigure(self, config: dict[str, Any]) -> None:
        """``{"version": N}`` pins a version; ``{"version": None}`` follows the ``champion`` alias."""
        version = config.get("version")
        self._pinned = None if version is None else str(version)
        self._swap_to(self._pinned)
        if not self._watcher.is_alive():
            self._watcher.start()

    def _swap_to(self, version: str | None) -> None:
        with self._swap_lock:
            if self._current is not None and version is not None and version == self._current[0].version:
                return
            bundle = self._loader(version)
            if self._current is not None and bundle.version == self._current[0].version:
                return
            self._current = (bundle, RequestValidator(bundle.schema))
        logger.info("serving %s version %s", bundle.model_name, bundle.version)

    def _watch(self) -> None:
        """Follow the champion alias in place: a promotion or rollback swaps the model in this replica
        within ``poll_s``, with no restart and no dropped request."""
        resolve = getattr(self._loader, "resolve", None)
        while resolve is not None and not self._stop.wait(self.poll_s):
            if self._pinned is not None:
                continue
            try:
                champion = resolve(None)
                if self._current is None or champion != self._current[0].version:
                    self._swap_to(champion)
            except Exception as exc:  # the registry is unreachable: keep serving what we have
                logger.warning("could not check the champion alias: %s", exc)

    def _ensure_loaded(self) -> None:
        if self._current is None:  # deployed without user_config: serve the champion
            self.reconfigure({})

    def _refuse(self, request: Request) -> JSONResponse | None:
        """401/403 unless the request carries the admin token (constant-time compare)."""
        if not self.admin_token:
            return JSONResponse({"detail": "no admin token is configured (serve.admin_token)"}, status_code=403)
        given = request.headers.get("authorization", "")
        if not given.startswith("Bearer "):
            return JSONResponse({"detail": "send Authorization: Bearer <admin token>"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(given[7:].encode(), self.admin_token.encode()):
            return JSONResponse({"detail": "wrong admin token"}, status_code=403)
        return None

    def _gate(self, request: Request) -> JSONResponse | None:
        """What /predict and /feedback refuse before reading the body: oversize, and no token when protected."""
        refused = self._too_big(request)
        if refused is None and self.protect_predict:
            refused = self._refuse(request)
        return refused

    def _too_big(self, request: Request) -> JSONResponse | None:
        """A 413 before the body is read, when Content-Length is over ``max_body_bytes``."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return JSONResponse({"detail": f"body of {length} bytes is over the limit of {self.max_body_bytes}; "
                                           "send fewer records per request"}, status_code=413)
        return None

    @api.post("/predict")
    async def predict(self, request: Request) -> JSONResponse:
        self._ensure_loaded()
        if (refused := self._gate(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": [{"loc": ["body"], "msg": "the body is not valid JSON"}]}, status_code=400)
        bundle, validator = self._current
        try:
            records = validator(body)
        except InvalidRequest as exc:
            return JSONResponse({"detail": exc.detail}, status_code=422)
        try:
            scored = await self._score_batch((bundle, validator.columns, records))
        except Exception as exc:
            self.errors += 1
            replica_metrics().errors.inc()
            logger.exception("prediction failed")
            return JSONResponse({"detail": f"prediction failed: {exc}"}, status_code=500)
        finite = scored.finite
        if not finite.all():  # e.g. 1e308 in a field: the model overflows; say which records
            bad = [int(i) for i in np.flatnonzero(~finite)[:20]]
            return JSONResponse({"detail": [{"loc": ["body", *([i] if isinstance(body, list) else [])],
                                             "msg": "the model cannot score this record (non-finite output); "
                                                    "check it for extreme values"} for i in bad]}, status_code=422)
        request_id = uuid.uuid4().hex
        if self.sender is not None:
            self.sender.add(scored.features, scored.predictions, scored.confidence,
                            [f"{request_id}:{i}" for i in range(len(scored.predictions))], records)
        self.served += len(scored.predictions)
        counter = replica_metrics().predictions
        if scored.classes is not None:  # by class; a regressor's numbers would make one series per value
            for label, count in zip(*np.unique(scored.predictions.astype(str), return_counts=True)):
                counter.labels(label).inc(int(count))
        return JSONResponse(scored.body(request_id, bundle.model_name, bundle.version))

    # The schema's defaults; __init__ sets the configured ones.
    @serve.batch(max_batch_size=ServeConf.batch_max_size, batch_wait_timeout_s=ServeConf.batch_wait_s)
    async def _score_batch(self, items: list[tuple[Any, list[str], list[dict[str, Any]]]]) -> list[Scored]:
        """Concurrent requests scored together (``serve.batch_max_size``, ``serve.batch_wait_s``).

        Each request keeps the model it was validated against, even if a swap lands in between.
        """
        out: list[Scored | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, (bundle, _, _) in enumerate(items):
            groups.setdefault(id(bundle), []).append(i)
        for idx in groups.values():
            bundle, columns, _ = items[idx[0]]
            for i, scored in zip(idx, score_many(bundle.pipeline, columns, [items[i][2] for i in idx])):
                out[i] = scored
        return out  # type: ignore[return-value]

    @api.post("/feedback")
    async def feedback(self, request: Request) -> JSONResponse:
        """``{"request_id": ..., "label": ...}`` or, for a request of several records, ``"labels": [...]``."""
        if (refused := self._gate(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "the body is not valid JSON"}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str) or (
                ("label" in body) == ("labels" in body)) or ("labels" in body and not isinstance(body["labels"], list)):
            return JSONResponse({"detail": 'send {"request_id": "<id from /predict>", "label": <true label>} '
                                           'or "labels": [one per record of that request]'}, status_code=422)
        labels = body["labels"] if "labels" in body else [body["label"]]
        if self.bundle.task == "regression" and not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in labels):
            return JSONResponse({"detail": "this model is a regressor: each label must be a finite number, "
                                           f"got {labels[:5]!r}"}, status_code=422)
        row_ids = [f"{body['request_id']}:{i}" for i in range(len(labels))]
        if self.sender is None:
            return JSONResponse({"detail": "this endpoint was deployed without a monitor"}, status_code=404)
        # Rows this replica served just now must reach the monitor first; rows another replica served
        # arrive within its flush period, so an unknown id is tried once more after that.
        sent = await asyncio.to_thread(self.sender.flush)
        try:
            if sent is not None:
                await sent
        except Exception:  # a lost ingest shows up below as unknown rows
            pass
        try:
            actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
            try:
                status = await actor.feedback.remote(row_ids, labels)
            except UnknownRows:
                await asyncio.sleep(2 * self.sender.flush_s + 0.1)
                status = await actor.feedback.remote(row_ids, labels)
        except UnknownRows:
            return JSONResponse({"detail": f"unknown request id {body['request_id']!r} (or more labels than "
                                           "records); ids come from POST /predict"}, status_code=404)
        except DuplicateFeedback:
            return JSONResponse({"detail": f"request {body['request_id']!r} already has feedback; "
                                           "it is counted once"}, status_code=409)
        except ValueError as exc:
            return JSONResponse({"detail": f"monitor unavailable: {exc}"}, status_code=503)
        return JSONResponse({"accepted": len(labels), "performance": status})

    @api.post("/admin/retrain")
    async def admin_retrain(self, request: Request) -> JSONResponse:
        """Start a retrain now (admin token required); the live model serves on throughout."""
        if (refused := self._refuse(request)) is not None:
            return refused
        if self.sender is None:
            return JSONResponse({"detail": "this endpoint was deployed without a monitor"}, status_code=404)
        try:
            actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
            started = await actor.trigger_retrain.remote("manual (POST /admin/retrain)")
        except ValueError as exc:
            return JSONResponse({"detail": f"monitor unavailable: {exc}"}, status_code=503)
        if not started:
            return JSONResponse({"detail": "not started: retraining is off or one is running"}, status_code=409)
        return JSONResponse({"started": True, "status": "GET /drift shows its progress"}, status_code=202)

    @api.get("/metrics")
    async def metrics(self) -> Response:
        return Response(replica_metrics().render(self.sender), media_type=CONTENT_TYPE)

    @api.get("/health")
    async def health(self) -> dict[str, Any]:
        self._ensure_loaded()
        return {"status": "ok", "model_version": self.bundle.version, "rows_served": self.served,
                "replica": serve.get_replica_context().replica_id.unique_id}

    @api.get("/model")
    async def model(self) -> dict[str, Any]:
        self._ensure_loaded()
        return self.bundle.describe()

    @api.get("/events")
    async def events(self, limit: int = 100) -> JSONResponse:
        """The monitor's persisted events, newest last: drift, performance drops, retrains, promotions."""
        if self.sender is None:
            return JSONResponse({"detail": "this endpoint was deployed without a monitor"}, status_code=404)
        if not 1 <= limit <= 10000:
            return JSONResponse({"detail": f"limit must be in [1, 10000], got {limit}"}, status_code=422)
        try:
            actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
            events = await actor.events_log.remote(limit)
        except Exception as exc:
            return JSONResponse({"detail": f"monitor unavailable: {exc}"}, status_code=503)
        return JSONResponse({"events": events})

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
        if self._current is not None and hasattr(self._loader, "resolve") and not self._watcher.is_alive():
            raise RuntimeError("champion watcher thread died")

    def __del__(self) -> None:
        if getattr(self, "_stop", None) is not None:
            self._stop.set()
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


def build_app(loader: Any, conf: ServeConf, version: str | None = None,
              monitor: dict[str, str] | None = None) -> serve.Application:
    """The bound Serve application, for ``serve.run`` here or a ``serve deploy`` config file
    (:mod:`mlauto.serve.entry`).

    ``version=None`` follows the ``champion`` alias: replicas check it every ``conf.poll_s`` and swap the
    model in place, so a promotion needs no redeploy and drops no request. A version pins it.
    ``monitor``: ``{"name", "namespace"}`` of the monitor actor that gets the traffic, or None.
    """
    scaling: dict[str, Any] = (
        {"autoscaling_config": dict(conf.autoscaling)} if conf.autoscaling else {"num_replicas": conf.num_replicas}
    )
    return ModelServer.options(
        **scaling,
        ray_actor_options={"num_cpus": conf.replica_cpus},
        user_config={"version": version},
    ).bind(loader, conf, monitor)


def deploy(loader: Any, conf: ServeConf, version: str | None = None, monitor: dict[str, str] | None = None) -> str:
    """Start Serve if needed and (re)deploy the app serving ``version`` at ``conf.host``, ``conf.port``,
    ``conf.route_prefix`` as ``conf.app_name``; returns the base URL. The rest is :func:`build_app`'s."""
    host, port, route_prefix, app_name = conf.host, conf.port, conf.route_prefix, conf.app_name
    serve.start(http_options={"host": host, "port": port})
    host, port = _http_address(host, port)
    start = time.perf_counter()
    serve.run(build_app(loader, conf, version, monitor), name=app_name, route_prefix=route_prefix)
    url = f"http://{host}:{port}{route_prefix.rstrip('/')}"
    logger.info("serving %s (%s) at %s (%.1fs)", app_name, f"version {version}" if version else "the champion", url,
                time.perf_counter() - start)
    return url
