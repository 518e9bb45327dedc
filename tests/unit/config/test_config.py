import pickle

import pytest
import yaml
from hydra.errors import ConfigCompositionException

from tests.helpers import make_config
from mlauto.config.store import CONF_DIR, GLOBAL_HEADER, experiment_files
from mlauto.errors import ConfigError, DataError
from mlauto.models import FAMILIES


def test_default_config_composes_and_validates():
    cfg = make_config()
    assert cfg.stages == ["ingest", "prepare", "tune", "serve", "monitor"]
    # models=all (the default): every model file but the opt-in ones, and each is a registered family
    files = {p.stem: yaml.safe_load(p.read_text()) for p in (CONF_DIR / "model").glob("*.yaml")}
    assert sorted(files) == FAMILIES.names()
    assert sorted(cfg.families) == sorted(name for name, conf in files.items() if not conf.get("opt_in"))
    assert cfg.root.startswith("/")


def test_overrides_reach_the_config(tmp_path):
    cfg = make_config([f"data.path={tmp_path}/my.csv", "data.target=label", "tune.num_samples=20"])
    assert cfg.data.path == f"{tmp_path}/my.csv" and cfg.data.target == "label" and cfg.tune.num_samples == 20


def test_data_path_override_reads_that_file(tmp_path):
    from mlauto.data import FileSource, make_source

    cfg = make_config([f"data.path={tmp_path}/my.csv", "data.target=label"])
    source = make_source(cfg.data.source, name=cfg.data.name, path=cfg.data.path, format=cfg.data.format,
                         target=cfg.data.target)
    assert isinstance(source, FileSource) and source.path == f"{tmp_path}/my.csv"
    with pytest.raises(ConfigError, match="the sample source ignores it"):
        make_config([f"data.path={tmp_path}/my.csv", "data.source=sample"])


def test_experiments_are_global_deltas():
    files = experiment_files()
    assert {f.stem for f in files} >= {"quickstart", "tune_only"}
    for f in files:
        assert f.read_text().startswith(GLOBAL_HEADER), f
    assert make_config(["experiment=quickstart"]).replay.enabled
    assert sorted(make_config(["experiment=tune_only"]).families) == ["hist_gb", "logreg"]


def test_unknown_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException) as exc:
        make_config(["tune.nmu_samples=3"])
    assert "nmu_samples" in str(exc.value.__cause__ or exc.value)


def test_unknown_group_option_lists_the_valid_ones():
    with pytest.raises(ConfigCompositionException, match="Available options in 'search'") as exc:
        make_config(["search=grid_typo"])
    assert "optuna" in str(exc.value) and "random" in str(exc.value)


@pytest.mark.parametrize(
    "override,key,allowed",
    [
        ("stages=[tune,deploy]", "stages", "serve"),
        ("tune.metric=auc", "tune.metric", "roc_auc"),
        ("monitor.detector=magic", "monitor.detector", "ks"),
        ("prepare.test_size=0.9", "prepare.test_size", "(0, 0.5)"),
        ("+model@families.catboost=logreg", "families", "random_forest"),
        ("families.logreg.space.C.type=gauss", "families.logreg.space.C.type", "loguniform"),
        ("cluster.address=nowhere", "cluster.address", "ray://"),
    ],
)
def test_bad_values_fail_naming_key_and_allowed_values(override, key, allowed):
    with pytest.raises(ConfigError) as exc:
        make_config([override])
    assert exc.value.key == key
    assert f"'{key}'" in str(exc.value) and allowed in str(exc.value)


def test_wrong_type_fails_before_work():
    with pytest.raises(ConfigCompositionException) as exc:
        make_config(["tune.num_samples=many"])
    assert "num_samples" in str(exc.value.__cause__ or exc.value)


def test_errors_pickle_across_processes():
    err = ConfigError("tune.metric", "auc", ["accuracy", "roc_auc"], "unknown metric")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.key == "tune.metric"
    assert str(pickle.loads(pickle.dumps(DataError("x")))) == "x"


def test_actions_are_validated():
    assert make_config(["action=promote", "version=3"]).version == "3"
    with pytest.raises(ConfigError, match="action=promote needs version=N"):
        make_config(["action=promote"])
    with pytest.raises(ConfigCompositionException) as exc:  # action is an Enum: Hydra refuses it
        make_config(["action=deploy"])
    text = str(exc.value.__cause__)
    assert "full_key: action" in text and "'deploy'" in text and "rollback" in text


def test_monitor_groups_compose_and_unknown_detector_options_are_refused():
    for group in ("ks", "cvm", "tabular", "scipy", "mmd", "online"):
        cfg = make_config([f"monitor={group}"])
        assert cfg.monitor.actor_name == "mlauto-monitor" and cfg.monitor.holdout_labels == 50  # from ks.yaml
    assert make_config(["monitor=mmd"]).monitor.options["n_permutations"] == 1000
    with pytest.raises(ConfigError) as exc:
        make_config(["monitor=mmd", "+monitor.options.colour=red"])
    assert exc.value.key == "monitor.options" and "n_permutations" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        make_config(["monitor.label_shift=1.5"])
    assert exc.value.key == "monitor.label_shift"
