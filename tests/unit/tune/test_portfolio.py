"""Known-good configs first (tune.portfolio): each family's portfolio, inside its planned space, without Ray."""

from __future__ import annotations

import json
import os

import pytest

from mlauto.config.schema import TuneConf
from mlauto.errors import ConfigError
from mlauto.models import FAMILIES, plan_families
from mlauto.tune.portfolio import PACKAGED, load_portfolio
from mlauto.tune.search import trial_params
from mlauto.tune.space import portfolio_points
from mlauto.train import start_points

from tests.helpers import make_config


def _planned(n_rows=5000, n_features=20, task="binary"):
    cfg = make_config(["models=all"])
    conf = {name: {"space": dict(f.space), "fixed": dict(f.fixed)} for name, f in cfg.families.items()}
    return plan_families(conf, task, n_rows=n_rows, n_features=n_features)


def test_portfolio_interleaves_families_and_stays_inside_the_space():
    families = _planned()
    points = portfolio_points(families, 8)
    assert [p["family"] for p in points][:5] == ["lightgbm", "logreg", "hist_gb", "extra_trees", "random_forest"]
    assert [p["family"] for p in points][5:] == ["lightgbm", "extra_trees"]  # then each family's second config
    for point in points:
        family, params = trial_params(point, families)
        space = families[family]["space"]
        for key, value in params.items():
            spec = space.get(key)
            if spec is None:
                assert key in families[family]["fixed"]
            elif spec["type"] == "choice":
                assert value in spec["values"]
            else:
                assert spec["low"] <= value <= spec["high"]
    assert portfolio_points(families, 0) == []
    assert TuneConf().portfolio == 8 and make_config([]).tune.portfolio == 0  # tests pin it off


def test_portfolio_is_clipped_to_a_small_data_space():
    families = _planned(n_rows=300, n_features=5)
    lgbm = next(p for p in portfolio_points(families, 8) if p["family"] == "lightgbm")
    assert lgbm["lightgbm.num_leaves"] == families["lightgbm"]["space"]["num_leaves"]["high"] == 15  # 300 // 20
    assert "lightgbm.colsample_bytree" not in lgbm  # not searched with < 8 features: the family's fixed value


def test_warm_start_goes_before_the_portfolio():
    families = _planned()
    points = start_points(families, ("logreg", {"C": 3.0}), 2, "hand")
    assert points[0] == {"family": "logreg", "logreg.C": 3.0} and len(points) == 3
    assert start_points(families, None, 0) is None


def test_negative_portfolio_is_rejected():
    with pytest.raises(ConfigError, match="tune.portfolio"):
        make_config(["tune.portfolio=-1"])


def _write(path, configs) -> str:
    path.write_text(json.dumps({"configs": configs}))
    return str(path)


def test_learned_configs_go_first_clipped_then_the_hand_picked_ones(tmp_path):
    families = _planned(n_rows=300, n_features=20)
    source = _write(tmp_path / "p.json", [
        {"family": "lightgbm", "params": {"num_leaves": 200, "learning_rate": 0.02}},  # clipped to 300 rows
        {"family": "mlp_not_planned", "params": {}},  # a family not in this search: skipped
        {"family": "logreg", "params": {"C": 1.0}},  # the hand-picked logreg config: listed once
    ])
    points = start_points(families, None, 4, source)
    assert points[0] == {"family": "lightgbm", "lightgbm.num_leaves": 15, "lightgbm.learning_rate": 0.02}
    assert points[1] == {"family": "logreg", "logreg.C": 1.0}
    assert [p["family"] for p in points[2:]] == ["lightgbm", "hist_gb"]  # then the hand-picked, deduplicated
    assert len(points) == len({json.dumps(p, sort_keys=True) for p in points})
    assert start_points(families, None, 4, "hand")[0]["family"] == "lightgbm"
    assert start_points(families, None, 4, "hand")[1] == {"family": "logreg", "logreg.C": 1.0}


def test_the_packaged_portfolio_is_read_and_a_bad_source_is_refused(tmp_path):
    if os.path.exists(PACKAGED):
        learned = load_portfolio(None)
        assert learned and all(c["family"] in FAMILIES for c in learned)
    with pytest.raises(ConfigError, match="tune.portfolio_source.*hand"):
        make_config([f"tune.portfolio_source={tmp_path / 'absent.json'}"])
    (tmp_path / "bad.json").write_text('{"configs": [{"params": {}}]}')
    with pytest.raises(ConfigError, match="tune.portfolio_source"):
        make_config([f"tune.portfolio_source={tmp_path / 'bad.json'}"])
    assert make_config([f"tune.portfolio_source={_write(tmp_path / 'ok.json', [])}"]).tune.portfolio_source
