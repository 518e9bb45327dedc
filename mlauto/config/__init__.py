"""Config schema, Hydra registration and validation."""

from mlauto.config.schema import STAGES, Config, config_from_dict
from mlauto.config.validate import metric_for_task, metric_mode, validate

__all__ = ["STAGES", "Config", "config_from_dict", "metric_for_task", "metric_mode", "validate"]
