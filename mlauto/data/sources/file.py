"""CSV, Parquet or JSON-lines files: one, a folder of them, or a glob."""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
from typing import TYPE_CHECKING, Any, Iterable

import ray.data

from mlauto import storage
from mlauto.data.sources.base import SOURCES, Source
from mlauto.errors import DataError

if TYPE_CHECKING:
    from mlauto.config.schema import DataConf

logger = logging.getLogger(__name__)

_READERS = {"csv": ray.data.read_csv, "parquet": ray.data.read_parquet, "json": ray.data.read_json}
_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json", ".jsonl": "json"}


def matching_files(path: str, suffixes: Iterable[str], key: str, accepted: str, names: str | None = None) -> list[str]:
    """The files behind ``path``: itself, the files of a folder that end in one of ``suffixes``, or a
    glob's files. None fails naming ``key``; ``accepted`` words what to give ("a CSV or Parquet"),
    ``names`` the suffixes looked for (default: all of them). An object-store URI (``s3://``) is listed
    through :mod:`mlauto.storage` the same way."""
    if storage.is_uri(path):
        return _remote_files(path, suffixes, key, accepted, names)
    full = os.path.abspath(os.path.expanduser(path))
    if any(ch in full for ch in "*?["):
        files = sorted(f for f in glob.glob(full) if os.path.isfile(f))
    elif os.path.isdir(full):
        files = sorted(os.path.join(full, f) for f in os.listdir(full)
                       if os.path.splitext(f)[1].lower() in suffixes and os.path.isfile(os.path.join(full, f)))
    elif os.path.isfile(full):
        files = [full]
    else:
        raise DataError(f"{key} {path!r} does not exist; give {accepted} file, a folder or a glob")
    if not files:
        raise DataError(f"{key} {path!r} matches no {names or '/'.join(sorted(suffixes))} file")
    return files


def _remote_files(path: str, suffixes: Iterable[str], key: str, accepted: str, names: str | None) -> list[str]:
    import fnmatch

    path = storage.normalize(path)
    if any(ch in path for ch in "*?["):
        folder = storage.dirname(path)
        files = [storage.join(folder, n) for n in storage.listdir(folder)
                 if fnmatch.fnmatchcase(n, storage.basename(path)) and storage.isfile(storage.join(folder, n))]
    elif storage.isfile(path):
        files = [path]
    elif storage.isdir(path):
        files = [storage.join(path, n) for n in storage.listdir(path)
                 if os.path.splitext(n)[1].lower() in suffixes and storage.isfile(storage.join(path, n))]
    else:
        raise DataError(f"{key} {path!r} does not exist; give {accepted} file, a folder or a glob")
    if not files:
        raise DataError(f"{key} {path!r} matches no {names or '/'.join(sorted(suffixes))} file")
    return sorted(files)


@SOURCES.register("file")
class FileSource(Source):
    """A CSV, Parquet or JSON-lines file, a folder of them, or a glob."""

    def __init__(self, path: str, format: str | None = None) -> None:
        self.path = path
        self.format = format

    def _files(self) -> list[str]:
        return matching_files(self.path, _SUFFIXES, "data.path", "a")

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

    @classmethod
    def resolve(cls, data: "DataConf") -> "DataConf":
        if data.path and "://" not in data.path:
            return dataclasses.replace(data, path=os.path.abspath(data.path))
        return data

    def read(self) -> ray.data.Dataset:
        files = self._files()
        fmt = self._format(files)
        logger.info("reading %d %s file(s) from %s", len(files), fmt, self.path)
        for f in files:
            if storage.size(f) == 0:
                raise DataError(f"{f} is empty; remove it or point data.path at a file with rows")
        return _READERS[fmt](files)

    def describe(self) -> dict[str, Any]:
        return {"source": "file", "path": storage.normalize(self.path), "format": self.format}
