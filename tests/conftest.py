"""Fixtures every tier shares, and the tier markers.

One local Ray per test session (``ray_session``) and a small trained model (``trained``) live here so
that both tests/integration and tests/e2e see them; tests/unit/conftest.py forbids Ray altogether.
Every test gets its tier's markers from its folder. Helpers that are not fixtures: tests/helpers.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import free_port, make_config

TESTS_DIR = Path(__file__).parent
# Directory -> markers every test under it gets, so no test of a tier can forget its marker.
TIER_MARKERS = {"integration": ("ray",), "e2e": ("slow", "ray"), "cluster": ("cluster",), "package": ("package",)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced = []
    for item in items:
        try:
            tier = item.path.relative_to(TESTS_DIR).parts[0]
        except ValueError:  # collected from outside tests/
            continue
        for name in TIER_MARKERS.get(tier, ()):
            item.add_marker(name)
        if tier == "unit" and "ray_session" in getattr(item, "fixturenames", ()):
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError("tests/unit runs without Ray, but these need the ray_session fixture "
                                "(directly or through another fixture): move them to tests/integration:\n  "
                                + "\n  ".join(misplaced))


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


@pytest.fixture(scope="session")
def ray_session(moto_server: dict[str, str]) -> Iterator[dict]:
    """A real local Ray, started once; every test that needs Ray shares it. Serve gets the ingress
    a user gets by default (HAProxy when installed, see ``serve.ingress``)."""
    import ray

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


@pytest.fixture(scope="module")
def blobs():
    """A small noisy binary problem, split train/test: the model-selection tests of both tiers fit on it."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=400, n_features=8, n_informative=4, flip_y=0.1, random_state=0)
    return X[:250], y[:250], X[250:], y[250:]


@pytest.fixture()
def tmp_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


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
