"""Registers the schema, the experiment files and ``models=all`` with Hydra's ConfigStore.

The config groups ship inside the package (``mlauto/conf``, loaded as ``pkg://mlauto.conf``), so a
wheel install works. Experiments live in ``mlauto/experiments/`` (one ``# @package _global_`` file
each) and are stored as the ``experiment`` group, so ``experiment=NAME`` selects one.

A user's own config folder adds to them: ``hydra.searchpath=[file:///path/to/folder]`` (or
``--config-dir``). Its ``model/<name>.yaml``, ``experiment/<name>.yaml``, ``data/<name>.yaml`` ...
are then selectable like the built-in ones, and ``models=all`` takes in its model files too: the list
it pulls in is built here from every ``model/*.yaml`` on the search path, so adding a family never
means editing a list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from mlauto.config.schema import Config

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = PACKAGE_DIR / "conf"
CONF_MODULE = "mlauto.conf"
CONF_PATH = f"pkg://{CONF_MODULE}"  # what hydra.main and compose load
EXPERIMENTS_DIR = PACKAGE_DIR / "experiments"
GLOBAL_HEADER = "# @package _global_"
_registered: dict[str, object] = {}  # the search path compose() last registered the configs for


def experiment_files(directory: Path = EXPERIMENTS_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def model_options(overrides: Sequence[str] = (), config_dir: str | None = None) -> list[str]:
    """The names of every ``model/<name>.yaml`` on the search path the launcher will compose with:
    the package's, ``--config-dir``'s and each ``hydra.searchpath`` folder's."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    search_path = create_config_search_path(CONF_PATH)
    if config_dir:
        search_path.prepend("command-line", f"file://{Path(config_dir).resolve()}", SearchPathQuery(provider="schema"))
    loader = ConfigLoaderImpl(config_search_path=search_path)
    return sorted(loader.get_group_options("model", config_name="config", overrides=list(overrides)))


def _search_key(overrides: Sequence[str], config_dir: str | None) -> tuple:
    return tuple(o for o in overrides if o.lstrip("+~").startswith("hydra.searchpath")), config_dir


def register_configs(overrides: Sequence[str] = (), config_dir: str | None = None,
                     experiments_dir: Path = EXPERIMENTS_DIR) -> None:
    """Store the schema as ``base_config``, every experiment file under group ``experiment``, and
    ``generated/every_model`` (what ``models=all`` selects): one ``/model@families.<name>`` entry per
    model file found for ``overrides``."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for path in experiment_files(experiments_dir):
        text = path.read_text()
        if not text.lstrip().startswith(GLOBAL_HEADER):
            raise ValueError(f"{path}: experiment files must start with '{GLOBAL_HEADER}'")
        node = OmegaConf.create(text) if text.strip() != GLOBAL_HEADER else OmegaConf.create({})
        cs.store(group="experiment", name=path.stem, node=node, package="_global_")
    # models/all.yaml pulls this in: one entry per model file, wherever it lives.
    every = [{f"/model@families.{name}": name} for name in model_options(overrides, config_dir)]
    cs.store(group="generated", name="every_model", node={"defaults": every}, package="_global_")
    _registered["key"] = _search_key(overrides, config_dir)
    register_help_resolvers(experiments_dir)


def register_help_resolvers(experiments_dir: Path = EXPERIMENTS_DIR) -> None:
    """``${mlauto_actions:}`` and ``${mlauto_experiments:}`` for ``mlauto --help`` (hydra/default.yaml):
    the lists come from the schema's :class:`Action` and the experiment files, not from the help text."""
    from mlauto.config.schema import Action

    OmegaConf.register_new_resolver("mlauto_actions", lambda: ", ".join(Action.values()), replace=True)
    OmegaConf.register_new_resolver("mlauto_experiments",
                                    lambda: ", ".join(p.stem for p in experiment_files(experiments_dir)), replace=True)


def compose(overrides: Sequence[str] = (), config_dir: str | None = None) -> DictConfig:
    """The DictConfig the launcher composes for ``overrides`` (unvalidated; see ``mlauto.context.to_config``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    # What the registration depends on: the search path (``hydra.searchpath``, ``config_dir``). The same
    # search path registers the same nodes, so a process that composes often (the API, the tests)
    # registers once per search path.
    if _registered.get("key") != _search_key(overrides, config_dir):
        register_configs(overrides, config_dir)
    overrides = list(overrides)
    if config_dir:  # as --config-dir: one more folder on the search path
        overrides = _with_searchpath(overrides, f"file://{Path(config_dir).resolve()}")
    with initialize_config_module(version_base="1.3", config_module=CONF_MODULE):
        return hydra_compose(config_name="config", overrides=overrides)


def _with_searchpath(overrides: list[str], entry: str) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    for i, o in enumerate(parsed):
        if o.get_key_element() == "hydra.searchpath":
            paths = [entry, *o.value()]
            return [*overrides[:i], "hydra.searchpath=[" + ",".join(paths) + "]", *overrides[i + 1:]]
    return [*overrides, f"hydra.searchpath=[{entry}]"]
