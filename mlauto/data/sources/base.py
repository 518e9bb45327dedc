"""The data source base class and its registry; one module per source sits beside this one."""

from __future__ import annotations

import abc
import inspect
from typing import TYPE_CHECKING, Any

import ray.data

from mlauto.errors import ConfigError
from mlauto.registry import Registry

if TYPE_CHECKING:
    from mlauto.config.schema import DataConf

SOURCES: Registry["Source"] = Registry("data source", "data.source")


class Source(abc.ABC):
    """Reads raw rows into a Ray Dataset. ``describe`` names the source in lineage records.

    A new source is one module defining a registered subclass plus one ``conf/data/<name>.yaml``: its
    constructor's arguments are filled from the ``data.*`` keys of the same names (see
    :func:`make_source`). ``resolve`` fixes what the launcher must fix before the run moves to other
    working directories (relative paths).
    """

    @abc.abstractmethod
    def read(self) -> ray.data.Dataset: ...

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]: ...

    @classmethod
    def resolve(cls, data: "DataConf") -> "DataConf":
        """``data`` with what this source reads made independent of the working directory (trials and
        retrain tasks run in others). The launcher calls it for the selected source; default: as is."""
        return data

    @classmethod
    def from_options(cls, source: str, options: dict[str, Any]) -> "Source":
        """Build from ``data.*`` values: the keys the constructor names; a missing required one fails."""
        params = inspect.signature(cls.__init__).parameters
        kwargs = {}
        for pname, param in params.items():
            if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            value = options.get(pname)
            if value is not None:
                kwargs[pname] = value
            elif param.default is param.empty:
                raise ConfigError(f"data.{pname}", value, hint=f"the {source} source needs data.{pname}")
        return cls(**kwargs)



def selected_source(source: str, options: dict[str, Any]) -> str:
    """The source ``data.source`` names; ``auto`` picks ``sql`` when ``url`` is set, ``file`` when
    ``path`` is set, else the bundled sample."""
    if source == "auto":
        return "sql" if options.get("url") else "file" if options.get("path") else "sample"
    return source


def make_source(source: str, **options: Any) -> Source:
    """Build the configured source from the ``data.*`` values (``name=``, ``path=``, ``url=``, ...).

    ``auto`` picks ``sql`` when ``url`` is set, ``file`` when ``path`` is set, else the bundled sample.
    """
    source = selected_source(source, options)
    if source == "file" and not options.get("path"):
        raise ConfigError("data.path", options.get("path"), "a file, folder or glob", "the file source needs data.path")
    return SOURCES.get(source).from_options(source, options)


def resolve_data(data: "DataConf") -> "DataConf":
    """``data`` as the selected source resolves it (see :meth:`Source.resolve`)."""
    return SOURCES.get(selected_source(data.source, {"url": data.url, "path": data.path})).resolve(data)
