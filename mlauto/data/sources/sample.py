"""scikit-learn's bundled sets, so the quickstart needs no download."""

from __future__ import annotations

from typing import Any

import ray.data

from mlauto.data.sources.base import SOURCES, Source
from mlauto.errors import ConfigError

# scikit-learn's bundled sets: breast_cancer (binary), digits, iris, wine (multiclass), diabetes (regression)
SAMPLES = ("breast_cancer", "diabetes", "digits", "iris", "wine")


@SOURCES.register("sample")
class SampleSource(Source):
    """A dataset bundled with scikit-learn, so the quickstart needs no download."""

    def __init__(self, name: str = "breast_cancer", target: str = "target") -> None:
        self.name = name
        self.target = target

    def read(self) -> ray.data.Dataset:
        from sklearn import datasets

        if self.name not in SAMPLES:
            raise ConfigError("data.name", self.name, SAMPLES, "unknown built-in sample")
        frame = getattr(datasets, f"load_{self.name}")(as_frame=True).frame
        frame = frame.rename(columns={"target": self.target})
        # Column names with spaces are awkward in JSON requests and SQL: use snake case.
        frame.columns = [str(c).strip().replace(" ", "_") for c in frame.columns]
        return ray.data.from_pandas(frame)

    def describe(self) -> dict[str, Any]:
        return {"source": "sample", "name": self.name}
