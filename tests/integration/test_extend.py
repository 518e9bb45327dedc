"""Adding a model family is one Python file plus one YAML: a toy family from a temporary module and a
``model/toy.yaml`` (and an experiment) in a user config folder, added through ``hydra.searchpath``."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlauto.cli import to_config
from mlauto.config.store import CONF_DIR, compose
from mlauto.models import FAMILIES, build_estimator, plan_families
from mlauto.tune import evaluate

from tests.helpers import FAST_TESTS

# the families models=all searches: every model YAML but the opt-in ones (models.include must name those)
BUILT_IN = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")
                  if not (yaml.safe_load(p.read_text()) or {}).get("opt_in", False))

FAMILY_MODULE = '''
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mlauto.models.families.base import FAMILIES, Family


@FAMILIES.register("toy")
class ToyFamily(Family):
    """A shallow decision tree: the one file a new family needs."""

    name = "toy"
    classifier = DecisionTreeClassifier
    regressor = DecisionTreeRegressor
    reproduce_tolerance = 1e-6
'''


@pytest.fixture()
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A module defining the toy family (importable only from this process) and a config folder with
    its model YAML and an experiment that lists the module in ``plugins``. The registry and
    ``sys.modules`` are restored afterwards, so other tests see the built-in families only."""
    module = f"toy_family_{uuid.uuid4().hex[:8]}"
    code = tmp_path / "code"
    code.mkdir()
    (code / f"{module}.py").write_text(FAMILY_MODULE)
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "toy.yaml").write_text(textwrap.dedent("""\
        space:
          max_depth: {type: int, low: 1, high: 4}
        fixed:
          min_samples_leaf: 2
        """))
    (conf / "experiment").mkdir()
    (conf / "experiment" / "toy.yaml").write_text(textwrap.dedent(f"""\
        # @package _global_
        name: toy
        plugins: [{module}]
        tune:
          num_samples: 2
        """))
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setattr(FAMILIES, "_items", dict(FAMILIES._items))
    yield conf, module
    sys.modules.pop(module, None)


def _overrides(conf: Path, root: Path, *more: str) -> list[str]:
    return [f"hydra.searchpath=[file://{conf}]", "experiment=toy", f"root={root}", *FAST_TESTS, *more]


def test_models_all_takes_in_a_user_family_and_it_validates_and_fits(user_folder, tmp_path):
    conf, module = user_folder
    cfg = to_config(compose(_overrides(conf, tmp_path / "runs")))
    assert cfg.name == "toy" and cfg.plugins == [module]  # the user's experiment was selected
    assert sorted(cfg.families) == sorted([*BUILT_IN, "toy"])  # models=all: every model file on the search path
    assert FAMILIES.get("toy").__module__ == module  # the plugin registered itself before validation
    assert cfg.families["toy"].space["max_depth"]["high"] == 4

    # Picked explicitly next to a built-in selection, as a built-in family is.
    fast = to_config(compose(_overrides(conf, tmp_path / "runs", "models=fast", "+model@families.toy=toy")))
    assert sorted(fast.families) == ["hist_gb", "logreg", "toy"]

    # Fitted through the trial's code path: planned for the data, built from its class, scored.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] > 0).astype(int)
    toy = cfg.families["toy"]
    planned = plan_families({"toy": {"space": dict(toy.space), "fixed": dict(toy.fixed)}}, "binary", 90, 3)
    est = build_estimator(planned["toy"]["family"], {**planned["toy"]["fixed"], "max_depth": 2}, seed=0, task="binary")
    scores = evaluate(est.fit(X[:90], y[:90]), X[90:], y[90:], "binary")
    assert scores["accuracy"] > 0.8
    assert FAMILIES.get("toy").reproduce_tolerance == 1e-6


def test_a_family_without_its_plugin_fails_naming_the_valid_ones(user_folder, tmp_path):
    conf, _ = user_folder
    from mlauto.errors import ConfigError

    with pytest.raises(ConfigError) as exc:  # the YAML is found, but nothing registered "toy"
        to_config(compose(_overrides(conf, tmp_path / "runs", "plugins=[]")))
    assert exc.value.key == "families" and "logreg" in exc.value.allowed


@pytest.mark.ray
def test_a_plugin_family_runs_in_ray_trials_that_cannot_import_it(user_folder, tmp_path, ray_session):
    """The session's Ray workers started before the module's folder joined sys.path: the family class
    reaches them by value."""
    from mlauto.config.schema import SchedulerConf, SearchConf, TuneConf
    from mlauto.tune.search import SearchRun, run_search

    conf, _ = user_folder
    cfg = to_config(compose(_overrides(conf, tmp_path / "runs")))
    rng = np.random.default_rng(1)
    X = rng.normal(size=(160, 3))
    y = (X[:, 0] + 0.2 * rng.normal(size=160) > 0).astype(int)
    toy = cfg.families["toy"]
    families = plan_families({"toy": {"space": dict(toy.space), "fixed": dict(toy.fixed)}}, "binary", 120, 3)
    result = run_search((X[:120], y[:120], X[120:], y[120:]), "binary",
                        TuneConf(num_samples=2, progress_interval_s=0.5), SearchConf(algorithm="random"),
                        SchedulerConf(), families, SearchRun("toy", str(tmp_path / "tune"), "accuracy", "max", 0))
    assert [t.family for t in result.trials] == ["toy", "toy"]
    assert all(t.status == "ok" for t in result.trials), [t.error for t in result.trials]
    assert result.best.score > 0.7
