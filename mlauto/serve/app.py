"""The model server: Ray Serve with a FastAPI ingress, fed by a model loader passed in as an argument."""


import asyncio
import logging
import threading
import time
import uuid
from typing import Any

import numpy as np
import ray
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from ray import serve

from mlauto.config.schema import ServeConf
from mlauto.errors import DuplicateFeedback, UnknownRows
from mlauto.serve.admin import move as admin_move
from mlauto.serve.body import BodyError, brief, read_json
from mlauto.serve.guard import Guard
from mlauto.serve.labels import check_labels
from mlauto.serve.metrics import CONTENT_TYPE, ray_row_counter, replica_metrics
from mlauto.serve.openapi import document
from mlauto.serve.predict import Scored, score_many
from mlauto.serve.sender import MonitorSender
from mlauto.serve.validation import InvalidRequest, RequestValidator

logger = logging.getLogger(__name__)

DEPLOYMENT = "ModelServer"

api = FastAPI(
    title="mlauto model server",
    description="POST /predict with one record or a list of records keyed by feature name; "
    "POST /feedback with a request id and its true label(s); GET /model for the feature schema.",
    docs_url=None, redoc_url=None, openapi_url=None,  # served by the replica, from the model it serves
)
# The ``serve`` keys the app itself reads (the rest say where it listens: :func:`deploy`'s business;
# ``host`` decides which routes need the token).
APP_KEYS = ("num_replicas", "replica_cpus", "max_body_bytes", "max_records", "admin_token", "protect_predict",
            "public_routes", "host", "batch_max_size", "batch_wait_s", "poll_s", "autoscaling", "monitor_flush_s",
            "monitor_buffer")
# Requests of more records than this are validated and scored in worker threads, in chunks, so the
# replica's event loop (health checks, small requests) keeps running; smaller ones take the fast path.
LARGE_REQUEST = 256
SCORE_CHUNK = 1024
MAX_DETAIL = 50  # validation errors listed per response


def route_of(request: Request) -> str:
    """The route template without the app's prefix (``/predict``), or ``unmatched``: bounded metric labels."""
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


@api.middleware("http")
async def measure(request: Request, call_next: Any) -> Response:
    """Count and time every request (the app is pickled by value into replicas: no shared globals here)."""
    metrics = replica_metrics()
    start = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("root_path", "") + route_of(request) if request.scope.get("route") else "unmatched"
    metrics.requests.labels(route, str(response.status_code)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - start)
    return response


def _app_name() -> str:
    try:
        return serve.get_replica_context().app_name
    except Exception:  # outside a replica
        return ""


def _error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


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
        self.max_records = conf.max_records
        self.guard = Guard(conf.admin_token, conf.host, conf.public_routes or [], conf.protect_predict)
        self._loader = loader
        # (bundle, validator), replaced in one assignment so a request never mixes two models.
        self._current: tuple[Any, RequestValidator] | None = None
        self._pinned: str | None = None
        self._swap_lock = threading.Lock()
        self._openapi: dict[tuple[str, str], dict[str, Any]] = {}
        self.poll_s = conf.poll_s
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
        self.served = 0
        self.errors = 0
        self._in_flight = 0  # /predict requests in this replica now (read and written on the event loop only)
        self.sender = (
            MonitorSender(monitor["name"], monitor["namespace"], conf.monitor_flush_s, conf.monitor_buffer,
                          on_count=ray_row_counter(_app_name()))
            if monitor else None
        )
        self._monitor_rows: int | None = None  # the monitor's own count, as last read by /metrics
        if self.sender is not None:
            replica_metrics().attach(self.sender, lambda: self._monitor_rows)

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

    async def _body(self, request: Request) -> Any:
        """The JSON body, read within ``max_body_bytes`` as it streams (raises :class:`BodyError`)."""
        return await read_json(request, self.max_body_bytes)

    def _too_many(self, n: int, what: str) -> JSONResponse | None:
        if n > self.max_records:
            return _error(413, f"{n} {what} in one call is over the limit of {self.max_records} "
                               "(serve.max_records); split them over several calls")
        return None

    @api.post("/predict")
    async def predict(self, request: Request) -> JSONResponse:
        self._in_flight += 1
        try:
            return await self._predict(request)
        finally:
            self._in_flight -= 1

    async def _predict(self, request: Request) -> JSONResponse:
        self._ensure_loaded()
        if (refused := self.guard.refuse(request.headers, "/predict")) is not None:
            return refused
        try:
            body = await self._body(request)
        except BodyError as exc:
            return _error(exc.status, exc.detail)
        bundle, validator = self._current
        n = len(body) if isinstance(body, list) else 1
        if (refused := self._too_many(n, "records")) is not None:
            return refused
        large = n > LARGE_REQUEST
        try:
            records = await asyncio.to_thread(validator, body) if large else validator(body)
        except InvalidRequest as exc:
            return _error(422, exc.detail[:MAX_DETAIL])
        try:
            if large:
                scored = await self._score_large(bundle, validator.columns, records)
            elif self._in_flight == 1:  # no other /predict in flight: a batch would only wait for nobody
                scored = score_many(bundle.pipeline, validator.columns, [records])[0]
            else:
                scored = await self._score_batch((bundle, validator.columns, records))
            if isinstance(scored, Exception):
                raise scored
        except (ValueError, ArithmeticError) as exc:  # the model's own input checks, e.g. values that overflow it
            return _error(422, [{"loc": ["body"], "msg": "the model cannot score these values (extreme numbers?): "
                                                         f"{type(exc).__name__}"}])
        except Exception as exc:
            self.errors += 1
            replica_metrics().errors.inc()
            logger.exception("prediction failed")
            return _error(500, f"prediction failed: {type(exc).__name__}")
        finite = scored.finite
        if not finite.all():  # e.g. 1e308 in a field: the model overflows; say which records
            bad = [int(i) for i in np.flatnonzero(~finite)[:20]]
            return _error(422, [{"loc": ["body", *([i] if isinstance(body, list) else [])],
                                 "msg": "the model cannot score this record (non-finite output); "
                                        "check it for extreme values"} for i in bad])
        request_id = uuid.uuid4().hex
        if self.sender is not None:
            self.sender.add(scored.features, scored.predictions, scored.confidence,
                            [f"{request_id}:{i}" for i in range(len(scored.predictions))], records,
                            version=bundle.version)
        self.served += len(scored.predictions)
        counter = replica_metrics().predictions
        if scored.classes is not None:  # by class; a regressor's numbers would make one series per value
            for label, count in zip(*np.unique(scored.predictions.astype(str), return_counts=True)):
                counter.labels(label).inc(int(count))
        return JSONResponse(scored.body(request_id, bundle.model_name, bundle.version))

    async def _score_large(self, bundle: Any, columns: list[str], records: list[dict[str, Any]]) -> Scored:
        """A large request, scored chunk by chunk in a worker thread: the event loop runs in between."""
        parts = []
        for start in range(0, len(records), SCORE_CHUNK):
            chunk = records[start:start + SCORE_CHUNK]
            parts.append((await asyncio.to_thread(score_many, bundle.pipeline, columns, [chunk]))[0])
        return Scored.concat(parts)

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
            try:
                for i, scored in zip(idx, score_many(bundle.pipeline, columns, [items[i][2] for i in idx])):
                    out[i] = scored
            except Exception:  # one request's values broke the model: score each alone, so only it fails
                for i in idx:
                    try:
                        out[i] = score_many(bundle.pipeline, columns, [items[i][2]])[0]
                    except Exception as exc:
                        out[i] = exc  # type: ignore[call-overload]
        return out  # type: ignore[return-value]

    @api.post("/feedback")
    async def feedback(self, request: Request) -> JSONResponse:
        """``{"request_id": ..., "label": ...}`` or, for a request of several records, ``"labels": [...]``."""
        self._ensure_loaded()
        if (refused := self.guard.refuse(request.headers, "/feedback")) is not None:
            return refused
        try:
            body = await self._body(request)
        except BodyError as exc:
            return _error(exc.status, exc.detail)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str) or (
                ("label" in body) == ("labels" in body)) or ("labels" in body and not isinstance(body["labels"], list)) \
                or len(body["request_id"]) > 64 or set(body) - {"request_id", "label", "labels"}:
            return _error(422, 'send {"request_id": "<id from /predict>", "label": <true label>} '
                               'or "labels": [one per record of that request]')
        labels = body["labels"] if "labels" in body else [body["label"]]
        if (refused := self._too_many(len(labels), "labels")) is not None:
            return refused
        if not labels:
            return _error(422, "labels is empty: send one label per record of the request")
        bundle = self.bundle
        classes = None if bundle.task == "regression" else list(getattr(bundle.pipeline, "classes_", []))
        checked = check_labels(labels, classes)
        if checked.errors:
            return _error(422, checked.errors[:MAX_DETAIL])
        if self.sender is None:
            return _error(404, "this endpoint was deployed without a monitor")
        row_ids = [f"{body['request_id']}:{i}" for i in range(len(labels))]
        # Rows this replica served just now must reach the monitor first; rows another replica served
        # arrive within its flush period, so an unknown id is tried once more after that.
        sent = await asyncio.to_thread(self.sender.flush)
        try:
            if sent is not None:
                await sent
        except Exception:  # a lost ingest shows up below as unknown rows
            pass
        args = (row_ids, checked.labels, checked.unseen)
        try:
            actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
            try:
                status = await actor.feedback.remote(*args)
            except UnknownRows:
                await asyncio.sleep(2 * self.sender.flush_s + 0.1)
                status = await actor.feedback.remote(*args)
        except UnknownRows:
            return _error(404, f"unknown request id {brief(body['request_id'])} (or more labels than records); "
                               "ids come from POST /predict")
        except DuplicateFeedback:
            return _error(409, f"request {brief(body['request_id'])} already has feedback; it is counted once")
        except Exception as exc:  # the monitor is down or restarting: not the caller's fault, try later
            logger.warning("feedback not delivered to the monitor: %s", exc)
            return _error(503, f"monitor unavailable ({type(exc).__name__}); retry later")
        if checked.unseen:
            replica_metrics().labels_unseen.inc(len(checked.unseen))
        return JSONResponse({"accepted": len(labels) - len(checked.unseen), "unseen_class": len(checked.unseen),
                             "performance": status})

    @api.post("/admin/retrain")
    async def admin_retrain(self, request: Request) -> JSONResponse:
        """Start a retrain now (admin token required); the live model serves on throughout."""
        if (refused := self.guard.refuse(request.headers, "/admin/retrain")) is not None:
            return refused
        if self.sender is None:
            return _error(404, "this endpoint was deployed without a monitor")
        try:
            actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
            started = await actor.trigger_retrain.remote("manual (POST /admin/retrain)")
        except Exception as exc:
            return _error(503, f"monitor unavailable ({type(exc).__name__})")
        if not started:
            return _error(409, "not started: retraining is off or one is running")
        return JSONResponse({"started": True, "status": "GET /drift shows its progress"}, status_code=202)

    @api.post("/admin/promote")
    async def admin_promote(self, request: Request, version: str) -> JSONResponse:
        """Make ``version`` the champion now (admin token); it always wins over a running retrain."""
        return await self._admin_move(request, "/admin/promote", version)

    @api.post("/admin/rollback")
    async def admin_rollback(self, request: Request) -> JSONResponse:
        """Restore the champion before the last promotion (admin token)."""
        return await self._admin_move(request, "/admin/rollback", None)

    async def _admin_move(self, request: Request, route: str, version: str | None) -> JSONResponse:
        if (refused := self.guard.refuse(request.headers, route)) is not None:
            return refused
        if version is not None and (len(version) > 20 or not version.isdigit()):
            return _error(422, "version must be a registered version number")
        link = (self.sender.name, self.sender.namespace) if self.sender is not None else None
        status, body = await asyncio.to_thread(admin_move, self._loader, version, link)
        return JSONResponse(body, status_code=status)

    @api.get("/metrics")
    async def metrics(self, request: Request) -> Response:
        if (refused := self.guard.refuse(request.headers, "/metrics")) is not None:
            return refused
        if self.sender is not None:  # the monitor's received count, beside what this replica sent
            try:
                actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
                self._monitor_rows = int((await asyncio.wait_for(actor.status.remote(), 2.0))["rows_seen"])
            except Exception:  # the monitor is down: the replica's own counters still answer
                self._monitor_rows = None
        return Response(replica_metrics().render(), media_type=CONTENT_TYPE)

    @api.get("/health")
    async def health(self) -> dict[str, Any]:
        self._ensure_loaded()
        return {"status": "ok", "model_version": self.bundle.version, "rows_served": self.served,
                "replica": serve.get_replica_context().replica_id.unique_id}

    @api.get("/model")
    async def model(self, request: Request) -> Any:
        if (refused := self.guard.refuse(request.headers, "/model")) is not None:
            return refused
        self._ensure_loaded()
        return self.bundle.describe()

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(self, request: Request) -> Any:
        """The OpenAPI document, with /predict's and /feedback's bodies built from the served model."""
        if (refused := self.guard.refuse(request.headers, "/openapi.json")) is not None:
            return refused
        self._ensure_loaded()
        bundle, root = self.bundle, request.scope.get("root_path", "")
        key = (str(bundle.version), root)
        if key not in self._openapi:
            self._openapi = {key: document(api.routes, bundle, self.max_records, root)}
        return JSONResponse(self._openapi[key])

    @api.get("/docs", include_in_schema=False)
    async def docs(self, request: Request) -> Any:
        if (refused := self.guard.refuse(request.headers, "/docs")) is not None:
            return refused
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title="mlauto model server")

    @api.get("/events")
    async def events(self, request: Request, limit: int = 100) -> JSONResponse:
        """The monitor's persisted events, newest last: drift, performance drops, retrains, promotions."""
        if (refused := self.guard.refuse(request.headers, "/events")) is not None:
            return refused
        if self.sender is None:
            return _error(404, "this endpoint was deployed without a monitor")
        if not 1 <= limit <= 10000:
            return _error(422, f"limit must be in [1, 10000], got {limit}")
        try:
            actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
            events = await actor.events_log.remote(limit)
        except Exception as exc:
            return _error(503, f"monitor unavailable ({type(exc).__name__})")
        return JSONResponse({"events": events})

    @api.get("/drift")
    async def drift(self, request: Request) -> JSONResponse:
        if (refused := self.guard.refuse(request.headers, "/drift")) is not None:
            return refused
        if self.sender is None:
            return _error(404, "this endpoint was deployed without a monitor")
        try:
            actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
            status = await actor.status.remote()
        except Exception as exc:
            return _error(503, f"monitor unavailable ({type(exc).__name__})")
        status["sender"] = self.sender.counts()  # this replica's: received, sent, acknowledged, dropped...
        return JSONResponse(status)

    @api.get("/report")
    async def report(self, request: Request) -> Response:
        """The monitor report: its drift timeline as a self-contained HTML page."""
        if (refused := self.guard.refuse(request.headers, "/report")) is not None:
            return refused
        if self.sender is None:
            return _error(404, "this endpoint was deployed without a monitor")
        try:
            actor = ray.get_actor(self.sender.name, namespace=self.sender.namespace)
            history, status = await actor.history.remote(None), await actor.status.remote()
        except Exception as exc:
            return _error(503, f"monitor unavailable ({type(exc).__name__})")
        from mlauto.report import monitor as monitor_report

        page = await asyncio.to_thread(monitor_report.render, history, f"Monitor report: {self.sender.name}", status)
        return Response(page, media_type="text/html; charset=utf-8")

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
              monitor: dict[str, str] | None = None, placement: dict[str, Any] | None = None) -> serve.Application:
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
        ray_actor_options={"num_cpus": conf.replica_cpus, **(placement or {})},  # placement: runtime.placement
        user_config={"version": version},
    ).bind(loader, conf, monitor)


def deploy(loader: Any, conf: ServeConf, version: str | None = None, monitor: dict[str, str] | None = None,
           placement: dict[str, Any] | None = None) -> str:
    """Start Serve if needed and (re)deploy the app serving ``version`` at ``conf.host``, ``conf.port``,
    ``conf.route_prefix`` as ``conf.app_name``; returns the base URL. The rest is :func:`build_app`'s."""
    host, port, route_prefix, app_name = conf.host, conf.port, conf.route_prefix, conf.app_name
    serve.start(http_options={"host": host, "port": port})
    host, port = _http_address(host, port)
    start = time.perf_counter()
    serve.run(build_app(loader, conf, version, monitor, placement), name=app_name, route_prefix=route_prefix)
    url = f"http://{host}:{port}{route_prefix.rstrip('/')}"
    logger.info("serving %s (%s) at %s (%.1fs)", app_name, f"version {version}" if version else "the champion", url,
                time.perf_counter() - start)
    return url
