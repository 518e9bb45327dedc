"""Each config group's options match what is registered: a family, searcher, scheduler, detector or
source added in one place and not the other fails here. Paths come from ``CONF_DIR`` and names from the
registries, so the test survives moving ``conf/`` or splitting a registry into a package."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mlauto.config.schema import SchedulerName, SearchAlgorithm
from mlauto.config.store import CONF_DIR, compose
from mlauto.data import SOURCES
from mlauto.models import FAMILIES
from mlauto.monitor import DETECTORS


def options(group: str) -> list[str]:
    return sorted(p.stem for p in Path(CONF_DIR, group).glob("*.yaml"))


def composed(overrides: list[str]):
    """The composed config, not validated: this test checks the groups, not the rules."""
    return OmegaConf.to_object(compose(overrides))


def test_model_options_are_the_registered_families() -> None:
    assert options("model") == FAMILIES.names()


def test_models_all_selects_every_family() -> None:
    assert sorted(composed(["models=all"]).families) == FAMILIES.names()


def test_search_options_are_the_search_algorithms() -> None:
    assert options("search") == sorted(SearchAlgorithm.values())
    for name in options("search"):
        assert composed([f"search={name}"]).search.algorithm == name


def test_scheduler_options_are_the_schedulers() -> None:
    assert options("scheduler") == sorted(SchedulerName.values())
    for name in options("scheduler"):
        assert composed([f"scheduler={name}"]).scheduler.name == name


@pytest.mark.parametrize("name", options("monitor"))
def test_monitor_options_name_registered_detectors(name: str) -> None:
    monitor = composed([f"monitor={name}"]).monitor
    assert monitor.detector in DETECTORS, (name, monitor.detector, DETECTORS.names())
    assert set(monitor.options) <= set(DETECTORS.get(monitor.detector).OPTIONS)


def test_every_detector_has_a_monitor_option() -> None:
    detectors = {composed([f"monitor={name}"]).monitor.detector for name in options("monitor")}
    assert detectors == set(DETECTORS.names())


@pytest.mark.parametrize("name", options("data"))
def test_data_options_name_registered_sources(name: str) -> None:
    source = composed([f"data={name}"]).data.source
    assert source == "auto" or source in SOURCES, (name, source, SOURCES.names())
