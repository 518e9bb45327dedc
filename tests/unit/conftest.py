"""The unit tier runs without Ray: a test here that starts Ray fails at once, saying where it belongs."""

from __future__ import annotations

import pytest


def _no_ray(*args, **kwargs):
    raise RuntimeError(
        "tests/unit runs without Ray, and this test just tried to start it (ray.init, a Ray Data "
        "dataset, Tune or Serve): move it to tests/integration, where the ray_session fixture is shared"
    )


@pytest.fixture(autouse=True)
def _forbid_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray
    import ray._private.worker as worker

    monkeypatch.setattr(ray, "init", _no_ray)
    monkeypatch.setattr(worker, "init", _no_ray)  # the same function, for code that imports it from there
