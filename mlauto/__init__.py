"""mlauto: automated ML workflow on Ray, from raw data to a monitored, self-retraining model.

The Python API (:mod:`mlauto.api`) is exported here lazily: ``import mlauto`` loads nothing heavy
(no Ray, no MLflow); ``mlauto.fit`` imports what it needs when first used.
"""

from typing import Any

__version__ = "0.1.0"

# name -> the mlauto.api attribute it stands for (imported on first use, see __getattr__)
_API = ("compose", "fit", "load", "serve", "FitResult", "Endpoint", "Model")


def __getattr__(name: str) -> Any:
    if name in _API:
        from mlauto import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlauto' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["__version__", *_API]
