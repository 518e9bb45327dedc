"""Config schema, Hydra registration and validation."""

from mlauto.config.schema import STAGES, Config
from mlauto.config.validate import metric_mode, validate

__all__ = ["STAGES", "Config", "metric_mode", "validate"]
