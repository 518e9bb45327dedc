"""Config schema (the owner of every default and fixed choice), Hydra registration and the registry of
config checks that stage packages fill."""

from mlauto.config.checks import check, run_checks, validate
from mlauto.config.schema import STAGES, Config, config_from_dict

__all__ = ["STAGES", "Config", "check", "config_from_dict", "run_checks", "validate"]
