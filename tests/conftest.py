"""Shared fixtures: one local Ray per test session, a small trained model, free ports."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Iterator

import pytest
import ray

from mlauto.cli import to_config
from mlauto.config import Config
from mlauto.config.store import compose


def make_config(overrides: list[str] | None = None) -> Config:
    """Compose and validate a config exactly as the launcher does."""
    return to_config(compose(overrides or []))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[dict[str, str]]:
    """An S3-compatible server (moto) on 127.0.0.1, and the standard AWS variables pointing at it.

    Session-wide and started before Ray (``ray_session`` needs it), so that Ray's workers inherit the
    endpoint as a cluster's nodes would from their environment. The code under test uses the ordinary
    S3 client path (pyarrow, boto3): nothing is patched.
    """
    from moto.server import ThreadedMotoServer

    port = free_port()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "mlauto-test",
           "AWS_SECRET_ACCESS_KEY": "mlauto-test", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture()
def s3_root(moto_server: dict[str, str]) -> str:
    """A fresh bucket on the moto server, as an ``s3://`` root."""
    import uuid

    import boto3

    bucket = f"mlauto-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/runs"


def s3_keys(uri: str) -> list[str]:
    """Every object key under an ``s3://bucket/prefix``, listed with boto3."""
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@pytest.fixture(scope="session")
def ray_session(moto_server: dict[str, str]) -> Iterator[dict]:
    """A real local Ray, started once; every test that needs Ray shares it. Serve gets the ingress
    a user gets by default (HAProxy when installed, see ``serve.ingress``)."""
    from mlauto.runtime import serve_ingress_env

    os.environ.update(serve_ingress_env("auto"))
    # A deleted app's replicas wait this long for HAProxy to drain them (30 s by default): fine in
    # production, minutes lost over a test session that deletes apps often.
    os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")
    ctx = ray.init(address="local", num_cpus=2, namespace="mlauto-tests", include_dashboard=False, log_to_driver=False)
    yield {"address": ctx.address_info["gcs_address"]}
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def trained(ray_session: dict, tmp_path_factory: pytest.TempPathFactory):
    """A model trained by the real pipeline on a tiny budget, registered as champion."""
    from mlauto import context, train
    from mlauto.track import CHAMPION, set_alias

    root = tmp_path_factory.mktemp("trained")
    cfg = make_config([f"root={root}", "models=fast", "tune.num_samples=4", "name=unit"])
    result = train.train(cfg, {})
    set_alias(context.tracking_uri(cfg), context.model_name(cfg), result.tracked.version, CHAMPION)
    return cfg, result


@pytest.fixture()
def tmp_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def with_root(cfg: Config, root: Path) -> Config:
    return dataclasses.replace(cfg, root=str(root))


class RequestLoop:
    """Clients POSTing one record in a loop from threads; records every outcome (status or exception)."""

    def __init__(self, url: str, body: dict, clients: int = 1, limit: int = 20000) -> None:
        import threading

        self.url, self.body, self.limit = url, body, limit
        self.outcomes: list = []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        import requests

        session = requests.Session()
        while not self.stop_event.is_set() and len(self.outcomes) < self.limit:
            try:
                self.outcomes.append(session.post(self.url, json=self.body, timeout=30).status_code)
            except requests.RequestException as exc:
                self.outcomes.append(type(exc).__name__)

    def __enter__(self) -> "RequestLoop":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join()

    def wait_for(self, n: int, timeout: float = 120) -> None:
        """Until ``n`` requests have answered in all."""
        import time

        deadline = time.time() + timeout
        while len(self.outcomes) < n:
            assert time.time() < deadline, f"only {len(self.outcomes)} of {n} requests answered"
            assert any(t.is_alive() for t in self.threads)
            time.sleep(0.05)

    def failures(self) -> dict:
        return {o: self.outcomes.count(o) for o in set(self.outcomes) if o != 200}


def clear_serve() -> None:
    """Delete every Serve app but keep Serve running: a full shutdown and restart costs ~30 s a time."""
    from ray import serve

    for app in list(serve.status().applications):
        serve.delete(app)


def wait_for_actor(handle, until, timeout: float = 40.0) -> dict:
    """Poll ``handle.status()`` until ``until(status)`` holds, riding out an actor restart."""
    import time

    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        try:
            status = ray.get(handle.status.remote())
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            time.sleep(0.3)  # restarting
            continue
        if until(status):
            return status
        time.sleep(0.2)
    raise TimeoutError(status)


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A PostgreSQL of the test session's own: initdb in a temp folder, run as the ``postgres`` OS user
    when the tests run as root (CI), on a free port; stopped and removed at teardown."""
    import shutil
    import tempfile

    from mlauto.track.server import Postgres, pg_binary

    try:
        pg_binary("initdb")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    directory = Path(tempfile.mkdtemp(prefix="mlauto-pg-"))  # not under pytest's root-only temp folder
    pg = Postgres(directory, free_port()).start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """``mlflow server`` on the session's PostgreSQL, artifacts proxied to a temp folder; stopped at teardown."""
    from mlauto.track.server import MlflowServer

    folder = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(postgres.url, str(folder / "mlartifacts"), free_port()).start(log=str(folder / "mlflow.log"))
    try:
        yield server
    finally:
        server.stop()
