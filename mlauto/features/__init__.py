"""Feature preprocessing fitted on train only and saved with the model."""

from mlauto.features.preprocess import Preprocessor, infer_schema

__all__ = ["Preprocessor", "infer_schema"]
