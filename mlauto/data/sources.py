"""Data sources: each one is a class registered by name that returns a Ray Dataset."""

from __future__ import annotations

import abc
import glob
import logging
import os
from typing import Any

import ray.data

from mlauto.errors import ConfigError, DataError
from mlauto.registry import Registry

logger = logging.getLogger(__name__)

SOURCES: Registry["Source"] = Registry("data source", "data.source")


class Source(abc.ABC):
    """Reads raw rows into a Ray Dataset. ``describe`` names the source in lineage records."""

    @abc.abstractmethod
    def read(self) -> ray.data.Dataset: ...

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]: ...


SAMPLES = ("breast_cancer", "iris", "wine")


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


_READERS = {"csv": ray.data.read_csv, "parquet": ray.data.read_parquet, "json": ray.data.read_json}
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json", ".jsonl": "json"}


@SOURCES.register("file")
class FileSource(Source):
    """A CSV, Parquet or JSON-lines file, a folder of them, or a glob."""

    def __init__(self, path: str, format: str | None = None) -> None:
        self.path = path
        self.format = format

    def _files(self) -> list[str]:
        path = os.path.abspath(os.path.expanduser(self.path))
        if any(ch in path for ch in "*?["):
            files = sorted(glob.glob(path))
        elif os.path.isdir(path):
            files = sorted(
                os.path.join(path, f) for f in os.listdir(path) if os.path.splitext(f)[1].lower() in _SUFFIXES
            )
        elif os.path.isfile(path):
            files = [path]
        else:
            raise DataError(f"data.path {self.path!r} does not exist; give a file, a folder or a glob")
        if not files:
            raise DataError(f"data.path {self.path!r} matches no .csv/.parquet/.json/.jsonl file")
        return files

    def _format(self, files: list[str]) -> str:
        if self.format:
            return self.format
        kinds = {_SUFFIXES.get(os.path.splitext(f)[1].lower()) for f in files}
        if len(kinds) != 1 or None in kinds:
            raise DataError(
                f"cannot infer the format of {self.path!r} (suffixes found: {sorted(map(str, kinds))}); "
                "set data.format to csv, parquet or json"
            )
        return kinds.pop()

    def read(self) -> ray.data.Dataset:
        files = self._files()
        fmt = self._format(files)
        logger.info("reading %d %s file(s) from %s", len(files), fmt, self.path)
        for f in files:
            if os.path.getsize(f) == 0:
                raise DataError(f"{f} is empty; remove it or point data.path at a file with rows")
        return _READERS[fmt](files)

    def describe(self) -> dict[str, Any]:
        return {"source": "file", "path": os.path.abspath(self.path), "format": self.format}


def make_source(source: str, *, name: str | None, path: str | None, format: str | None, target: str) -> Source:
    """Build the configured source; ``auto`` reads ``path`` when set, else the bundled sample."""
    if source == "auto":
        source = "file" if path else "sample"
    cls = SOURCES.get(source)
    if cls is SampleSource:
        return SampleSource(name=name or "breast_cancer", target=target)
    if cls is FileSource:
        if not path:
            raise ConfigError("data.path", path, "a file, folder or glob", "the file source needs data.path")
        return FileSource(path=path, format=format)
    return cls()  # pragma: no cover - future sources without arguments
