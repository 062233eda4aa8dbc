"""A monitor's `${NAME}` settings: which variables it needs, and the monitor with them read from the environment."""

from __future__ import annotations

from collections.abc import Mapping

from playbook import secrets
from playbook.errors import ConfigError
from playbook.home.monitors import Monitor

# The settings a value from the environment may stand in; the others are names and choices, never secrets.
SUBSTITUTED = ("url", "phone_number_id", "access_token", "api_base")


def env_references(monitor: Monitor) -> list[str]:
    """The ${NAME} variables the monitor needs, in the order its settings name them."""
    found: list[str] = []
    for key in SUBSTITUTED:
        value = getattr(monitor, key)
        if value:
            found += [name for name in secrets.references(value) if name not in found]
    return found


def resolved(monitor: Monitor, env: Mapping[str, str]) -> Monitor:
    """The monitor with each ${NAME} replaced by its value, every value registered as a secret."""
    changed: dict[str, str] = {}
    for key in SUBSTITUTED:
        value = getattr(monitor, key)
        if not value:
            continue

        def missing(var: str, key: str = key) -> ConfigError:
            return ConfigError(f"monitor '{monitor.name}' setting '{key}': ${{{var}}} is not set "
                               f"(export {var}=... or add it to the home's .env)")

        changed[key] = secrets.substitute(value, env, missing)
    # A token written in the playbook itself is still a token: masked wherever a provider echoes it.
    secrets.register(changed.get("access_token"))
    return monitor.model_copy(update=changed)
