"""Channel types come from the entry-point group `playbook.publishers`; only the ones used are imported."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from playbook.errors import ChannelError, did_you_mean, one_of

GROUP = "playbook.publishers"


class Registry:
    """Maps a channel `type` to its publisher class, importing a plugin only when a channel uses it."""

    def __init__(self, targets: Mapping[str, str] | None = None) -> None:
        if targets is None:
            targets = {ep.name: ep.value for ep in entry_points(group=GROUP)}
        self.targets = dict(targets)
        self._loaded: dict[str, type[Any]] = {}

    def types(self) -> list[str]:
        return sorted(self.targets)

    def get(self, type_name: str, *, channel: str) -> type[Any]:
        from playbook.publishers.base import Publisher

        if type_name in self._loaded:
            return self._loaded[type_name]
        target = self.targets.get(type_name)
        if target is None:
            raise ChannelError(
                f"channel '{channel}': unknown type '{type_name}'{did_you_mean(type_name, self.targets)};"
                f" known types: {one_of(self.targets)}"
            )
        module_name, _, attr = target.partition(":")
        try:
            import importlib

            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ChannelError(
                f"channel '{channel}': type '{type_name}' is installed but cannot be loaded ({exc}); "
                "reinstall the package that provides it"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, Publisher)):
            raise ChannelError(f"channel '{channel}': '{target}' is not a Publisher class")
        self._loaded[type_name] = cls
        return cls


_default: Registry | None = None


def default_registry() -> Registry:
    global _default
    if _default is None:
        _default = Registry()
    return _default


def use_registry(registry: Registry | None) -> None:
    """Replace the registry (tests pin the built-in types so installed plugins cannot leak in)."""
    global _default
    _default = registry
