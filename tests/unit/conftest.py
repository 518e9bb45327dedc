"""The unit tier runs without Ray, on one thread per library.

From each unit test's setup (module fixtures included) to the end of its teardown:
- ``ray.init`` raises, so a test here that starts Ray (directly, through Ray Data, Tune or Serve)
  fails at once, saying where it belongs;
- torch, OpenMP and BLAS get one thread each: unit tests check answers, not parallel speed, and on a
  small shared machine a thread per core oversubscribes it (an MLP fit went from 2 s to 50 s under load).
Both are undone after each test, so other tiers' tests in the same run are untouched. (Setup and
teardown hooks in this file see only the tests under tests/unit.)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import pytest

_UNIT_CONTEXT = pytest.StashKey[contextlib.ExitStack]()


def _no_ray(*args, **kwargs):
    raise RuntimeError(
        "tests/unit runs without Ray, and this test just tried to start it (ray.init, a Ray Data "
        "dataset, Tune or Serve): move it to tests/integration, where the ray_session fixture is shared"
    )


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    import ray
    import ray._private.worker as worker
    from threadpoolctl import threadpool_limits

    stack = item.stash[_UNIT_CONTEXT] = contextlib.ExitStack()
    patch = stack.enter_context(pytest.MonkeyPatch.context())
    patch.setattr(ray, "init", _no_ray)
    patch.setattr(worker, "init", _no_ray)  # the same function, for code that imports it from there
    stack.enter_context(threadpool_limits(limits=1))
    stack.enter_context(_one_torch_thread())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        return (yield)
    finally:
        stack = item.stash.get(_UNIT_CONTEXT, None)
        if stack is not None:
            stack.close()
