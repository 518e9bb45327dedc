"""One generic name -> class registry, used for model families, data sources and detectors."""

from __future__ import annotations

from types import ModuleType
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from mlauto.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to classes; an unknown name fails listing the valid ones."""

    def __init__(self, kind: str, config_key: str) -> None:
        self.kind = kind
        self.config_key = config_key
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.kind} '{name}' is already registered by {self._items[name]!r}")
            self._items[name] = cls
            return cls

        return deco

    def get(self, name: str, key: str | None = None) -> type[T]:
        if name not in self._items:
            raise ConfigError(key or self.config_key, name, sorted(self._items), f"unknown {self.kind}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_members(package: str, path: Iterable[str]) -> list[str]:
    """Import every public module of an extension package (``mlauto.models.families`` and the like),
    so a new member registers itself by being a file there: no import line to add anywhere.

    ``base`` and modules whose name starts with ``_`` are the package's own machinery, not members."""
    import importlib
    import pkgutil

    names = sorted(m.name for m in pkgutil.iter_modules(list(path))
                   if not m.name.startswith("_") and m.name != "base")
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


def import_plugins(modules: Iterable[str]) -> list[ModuleType]:
    """Import a user's extension modules (``plugins`` config key) so their families, sources or
    detectors register themselves; each is pickled by value, so Ray workers that cannot import it
    still get its classes."""
    import importlib

    from ray import cloudpickle  # Ray's own copy: what it pickles tasks and object-store values with

    loaded = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError("plugins", name, "an importable module",
                              f"{exc}; install it or put its folder on PYTHONPATH") from None
        cloudpickle.register_pickle_by_value(module)
        loaded.append(module)
    return loaded
