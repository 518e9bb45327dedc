"""Helpers shared by test files (import them from here, not from conftest)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mlauto.config.schema import SchedulerConf, SearchConf, TuneConf
from mlauto.tune import SearchRun, run_search


def search(data: tuple, families: dict[str, Any], *, task: str = "binary", scheduler: str = "fifo",
           scheduler_options: dict[str, Any] | None = None, **kw: Any) -> Any:
    """:func:`run_search` with its config sections built from keywords (``num_samples=4, algorithm="grid"``),
    the schema's defaults for the rest; ``name``, ``storage_path``, ``metric``, ``mode``, ``seed`` and
    ``points_to_evaluate`` make the :class:`SearchRun`."""
    def take(cls: type) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: kw.pop(k) for k in list(kw) if k in names})

    run = take(SearchRun)
    tune_conf, search_conf = take(TuneConf), take(SearchConf)
    scheduler_conf = SchedulerConf(name=scheduler, **(scheduler_options or {}))
    assert not kw, f"not a run_search setting: {sorted(kw)}"
    return run_search(data, task, tune_conf, search_conf, scheduler_conf, families, run)
