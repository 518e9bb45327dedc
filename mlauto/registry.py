"""One generic name -> class registry, used for model families, data sources and detectors."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

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
