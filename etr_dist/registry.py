"""A tiny name -> object registry so variants (losses, engines, transports) live outside if-chains.

A registry built with `config_key` is where that config key's valid values live: config validation asks it
(`registered_names`), so registering a new variant (in the package or in a plugin module) is all it takes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

# The modules that define the config-backed registries and register the package's own variants.
REGISTRY_MODULES = (
    "etr_dist.algos",
    "etr_dist.data.loading",
    "etr_dist.models",
    "etr_dist.rollout",
    "etr_dist.sync.transports",
)
_BY_CONFIG_KEY: dict[str, Registry] = {}


class Registry(Generic[T]):
    def __init__(self, kind: str, config_key: str | None = None) -> None:
        self.kind = kind
        self.config_key = config_key
        self._entries: dict[str, T] = {}
        if config_key is not None:
            _BY_CONFIG_KEY[config_key] = self

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} '{name}'; known: {sorted(self._entries)}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)


def import_plugins(modules: Iterable[str]) -> None:
    """Import each plugin module (its decorators register its variants); a bad name fails naming it."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(
                f"cannot import plugin module {module!r} (config key 'plugins'): {err}"
            ) from err


def registered_names(plugins: Iterable[str] = ()) -> dict[str, list[str]]:
    """config key -> the names its registry holds, after importing the package's registries and the plugins."""
    import_plugins(REGISTRY_MODULES)
    import_plugins(plugins)
    return {key: registry.names() for key, registry in _BY_CONFIG_KEY.items()}
