"""Feature transforms and selection, composed into the fitted preprocessing saved with the model."""

from mlauto.features.preprocess import Preprocessor, default_steps, infer_schema, write_report
from mlauto.features.selection import SELECTORS, selector_options
from mlauto.features.transforms import TRANSFORMS, transform_options

__all__ = ["SELECTORS", "TRANSFORMS", "Preprocessor", "default_steps", "infer_schema", "selector_options",
           "transform_options", "write_report"]
