"""The long chaos runs (marker ``chaos_full``) run only when selected: ``pytest -m chaos_full``."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "chaos_full" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="long chaos run: select it with -m chaos_full")
    for item in items:
        if "chaos_full" in item.keywords:
            item.add_marker(skip)
