"""Shared fixtures: one local Ray per test session, a small trained model, free ports."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Iterator

import pytest
import ray
from hydra import compose, initialize_config_dir

from mlauto.cli import to_config
from mlauto.config import Config
from mlauto.config.store import CONF_DIR, register_configs

register_configs()


def make_config(overrides: list[str] | None = None) -> Config:
    """Compose and validate a config exactly as the launcher does."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return to_config(compose(config_name="config", overrides=overrides or []))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_session() -> Iterator[dict]:
    """A real local Ray, started once; every test that needs Ray shares it."""
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
    from mlauto import pipeline
    from mlauto.track import CHAMPION, set_alias

    root = tmp_path_factory.mktemp("trained")
    cfg = make_config([f"root={root}", "models=fast", "tune.num_samples=4", "name=unit"])
    result = pipeline.train(cfg, {})
    set_alias(pipeline.tracking_uri(cfg), pipeline.model_name(cfg), result.tracked.version, CHAMPION)
    return cfg, result


@pytest.fixture()
def tmp_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def with_root(cfg: Config, root: Path) -> Config:
    return dataclasses.replace(cfg, root=str(root))
