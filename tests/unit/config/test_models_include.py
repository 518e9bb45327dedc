"""``models.include=[...]`` picks families out of what the ``models`` group composed."""

from __future__ import annotations

import pytest

from mlauto.context import build_config
from mlauto.errors import ConfigError


def test_include_picks_families_in_the_given_order():
    assert list(build_config(["models.include=[logreg,knn]"]).families) == ["logreg", "knn"]
    assert list(build_config(["models=fast", "models.include=[hist_gb]"]).families) == ["hist_gb"]
    assert set(build_config([]).families) >= {"logreg", "knn", "hist_gb", "random_forest"}  # null: all


def test_include_names_only_composed_families():
    with pytest.raises(ConfigError) as err:
        build_config(["models=fast", "models.include=[knn]"])
    assert str(err.value) == ("config key 'models.include' has invalid value ['knn']; allowed: hist_gb, logreg. "
                              "name families the models group composed (models=all has every one)")
