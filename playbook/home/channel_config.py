"""channels.yaml: where messages go. `${NAME}` values come from the environment and are secrets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import BaseModel, SecretStr, ValidationError

from playbook import secrets
from playbook.errors import ChannelError, did_you_mean, one_of
from playbook.home.locate import Home
from playbook.home.model import validation_to_error
from playbook.home.yamlfile import YamlDoc
from playbook.publishers.base import ChannelContext, Publisher
from playbook.publishers.registry import Registry, default_registry

_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Channels:
    """The parsed channels.yaml of a home; publishers are built on demand."""

    home: Home
    doc: YamlDoc
    raw: dict[str, dict[str, Any]]
    drill: dict[str, str]
    registry: Registry
    secrets: set[str] = field(default_factory=set)
    _built: dict[str, Publisher[Any]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.raw)

    def type_of(self, name: str) -> str:
        return str(self.raw[name].get("type", ""))

    def require(self, name: str, *, used_by: str = "") -> None:
        if name not in self.raw:
            by = f"{used_by} names " if used_by else ""
            raise ChannelError(
                f"{by}channel '{name}', which channels.yaml does not define{did_you_mean(name, self.raw)};"
                f" defined: {one_of(self.raw)}"
            )

    def publisher(self, name: str, languages: list[str], *, offline: bool = False) -> Publisher[Any]:
        """The publisher of channel `name`, with its settings resolved and validated.

        `offline` (validate, render, dry-run) tolerates unset ${NAME} variables: the channel is built
        from its settings as written, unchecked, and the variables are listed in `unset`.
        """
        self.require(name)
        if name in self._built:
            return self._built[name]
        if offline and self.missing_env(name):
            raw = self.raw[name]
            cls = self.registry.get(str(raw.get("type")), channel=name)
            publisher_: Publisher[Any] = cls(
                name, cls.Config.model_construct(**_secrets_wrapped(cls.Config, raw)),
                ChannelContext(self.home.root, languages),
            )
            return publisher_
        raw = self.raw[name]
        loc: tuple[str | int, ...] = ("channels", name)
        type_name = raw.get("type")
        if not isinstance(type_name, str) or not type_name:
            raise self.doc.error(f"channel '{name}': missing setting 'type'", loc)
        cls = self.registry.get(type_name, channel=name)
        resolved = {key: self._substitute(value, name, (*loc, key)) for key, value in raw.items()}
        try:
            config = cls.Config.model_validate(resolved)
        except ValidationError as exc:
            err = validation_to_error(exc, self.doc.at(loc))
            raise ChannelError(f"channel '{name}' {_setting_phrase(err.message)}", path=err.path,
                               line=err.line, column=err.column) from None
        for value in config.model_dump().values():
            if isinstance(value, SecretStr):
                secrets.register(value.get_secret_value())
        publisher: Publisher[Any] = cls(
            name, config, ChannelContext(home=self.home.root, languages=languages,
                                         secrets=frozenset(self.secrets))
        )
        self._built[name] = publisher
        return publisher

    def _substitute(self, value: Any, channel: str, loc: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {k: self._substitute(v, channel, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute(v, channel, (*loc, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value

        def missing(var: str) -> ChannelError:
            setting = ".".join(str(p) for p in loc[2:])
            line, column = self.doc.where(loc)
            return ChannelError(f"channel '{channel}' setting '{setting}': ${{{var}}} is not set "
                                f"(export {var}=... or add it to {self.home.root / '.env'})",
                                path=self.doc.path, line=line, column=column)

        resolved = secrets.substitute(value, self.home.env, missing)
        # The values it took, for this channel's own masking of what its provider echoes.
        self.secrets.update(self.home.env[var] for var in secrets.references(value))
        return resolved

    def missing_env(self, name: str) -> list[str]:
        """The ${NAME} variables channel `name` needs that neither the environment nor .env sets."""
        return [var for var in self.env_references(name) if not self.home.env.get(var)]

    def env_references(self, name: str) -> list[str]:
        """The ${NAME} variables channel `name` needs."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for v in value.values():
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)
            elif isinstance(value, str):
                found.extend(secrets.references(value))

        walk(self.raw.get(name, {}))
        return found

    def sandbox_of(self, name: str) -> str | None:
        return self.drill.get(name)


def _secrets_wrapped(config: type[BaseModel], raw: dict[str, Any]) -> dict[str, Any]:
    """Settings as written, with the values of secret settings as SecretStr, as a validated config has them."""
    secret = {key for name, f in config.model_fields.items() for key in (name, f.alias)
              if key and SecretStr in (f.annotation, *get_args(f.annotation))}
    return {k: SecretStr(v) if k in secret and isinstance(v, str) else v for k, v in raw.items()}


def _setting_phrase(message: str) -> str:
    # "timeout: 'x' is not a duration" -> "setting 'timeout': 'x' is not a duration"
    head, sep, rest = message.partition(": ")
    if sep and " " not in head:
        return f"setting '{head}': {rest}"
    return message.replace("unknown setting", "has an unknown setting", 1)


def load_channels(home: Home, registry: Registry | None = None) -> Channels:
    doc = home.load_channels_doc()
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise doc.error("expected a mapping with 'channels:' at the top")
    for key in data:
        if key not in ("channels", "drill"):
            raise doc.error(f"unknown key '{key}'{did_you_mean(key, ['channels', 'drill'])}", (key,))
    channels = data.get("channels") or {}
    if not isinstance(channels, dict):
        raise doc.error("'channels' must map channel names to their settings", ("channels",))
    for name, settings in channels.items():
        if not _CHANNEL_NAME.match(name):
            raise doc.error(f"'{name}' is not a channel name: letters, digits, -, _ and .", ("channels", name))
        if not isinstance(settings, dict):
            raise doc.error(f"channel '{name}' must be a mapping of settings", ("channels", name))
    drill = data.get("drill") or {}
    if not isinstance(drill, dict) or not all(isinstance(v, str) for v in drill.values()):
        raise doc.error("'drill' must map live channel names to sandbox channel names", ("drill",))
    for live, sandbox in drill.items():
        for role, ref in (("live", live), ("sandbox", sandbox)):
            if ref not in channels:
                raise doc.error(
                    f"drill maps {role} channel '{ref}', which is not defined{did_you_mean(ref, channels)}",
                    ("drill", live),
                )
    return Channels(home=home, doc=doc, raw=channels, drill=dict(drill), registry=registry or default_registry())
