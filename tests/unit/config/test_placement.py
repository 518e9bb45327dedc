"""cluster.placement: component -> node labels, turned into soft Ray options by runtime.placement."""

from __future__ import annotations

import pickle
from functools import partial

import pytest

from mlauto.errors import ConfigError
from mlauto.runtime import Placed, placement
from tests.helpers import make_config


def test_placement_is_a_label_selector_with_a_fallback_to_any_node() -> None:
    cfg = make_config(["+cluster.placement.monitor={mlauto.io/role:worker}"])
    assert placement(cfg.cluster, "monitor") == {"label_selector": {"mlauto.io/role": "worker"},
                                                 "fallback_strategy": [{"label_selector": {}}]}
    assert placement(cfg.cluster, "serve") == {}  # no labels: Ray places it as before


def test_placement_names_only_placeable_components() -> None:
    with pytest.raises(ConfigError) as err:
        make_config(["+cluster.placement.trials={mlauto.io/role:worker}"])
    assert "serve, monitor, retrain" in str(err.value) and "CPUs" in str(err.value)


def test_placed_callable_keeps_its_options_through_a_pickle() -> None:
    placed = Placed(partial(max, 1), {"label_selector": {"a": "b"}})
    again = pickle.loads(pickle.dumps(placed))
    assert again(5) == 5 and again.ray_options == {"label_selector": {"a": "b"}}
