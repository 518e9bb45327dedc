"""Registers the schema and the experiment files with Hydra's ConfigStore.

Experiments live in the top-level ``experiments/`` folder (one ``# @package _global_`` file each) and
are stored as the ``experiment`` group, so ``experiment=NAME`` selects one.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from mlauto.config.schema import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"
EXPERIMENTS_DIR = REPO_ROOT / "experiments"
GLOBAL_HEADER = "# @package _global_"


def experiment_files(directory: Path = EXPERIMENTS_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def register_configs(experiments_dir: Path = EXPERIMENTS_DIR) -> None:
    """Store the schema as ``base_config`` and every experiment file under group ``experiment``."""
    if not CONF_DIR.is_dir():
        raise FileNotFoundError(
            f"mlauto's config folder {CONF_DIR} is missing: install from a checkout (pip install -e .) "
            "so conf/ and experiments/ sit beside the package"
        )
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for path in experiment_files(experiments_dir):
        text = path.read_text()
        if not text.lstrip().startswith(GLOBAL_HEADER):
            raise ValueError(f"{path}: experiment files must start with '{GLOBAL_HEADER}'")
        node = OmegaConf.create(text) if text.strip() != GLOBAL_HEADER else OmegaConf.create({})
        cs.store(group="experiment", name=path.stem, node=node, package="_global_")
