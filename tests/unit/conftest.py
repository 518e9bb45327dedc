"""The unit tier runs without Ray, on one thread per library.

A test here that starts Ray fails at once, saying where it belongs. Torch, OpenMP and BLAS get one
thread each: unit tests check answers, not parallel speed, and on a small shared machine their
default of one thread per core oversubscribes it (an MLP fit went from 2 s to 50 s under load).
"""

from __future__ import annotations

from typing import Iterator

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


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)
