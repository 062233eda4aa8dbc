"""The base of every file model: unknown keys refused with a hint, errors that carry their place in the file."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from playbook.errors import did_you_mean

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ID = re.compile(ID_PATTERN)


def check_id(value: str) -> str:
    """`value`, when it is an id (of a playbook, a monitor): lower-case letters, digits, - and _."""
    if not ID.match(value):
        raise PydanticCustomError("id", "'{value}' is not a valid id: lower-case letters, digits, - and _",
                                  {"value": value})
    return value


class Strict(BaseModel):
    """Base of every file model: unknown keys fail with the closest known key suggested."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            known |= {f.alias for f in cls.model_fields.values() if f.alias}
            for key in data:
                if key not in known:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key '{key}'{hint}; known keys: {known}",
                        {"key": key, "hint": did_you_mean(str(key), known), "known": ", ".join(sorted(known))},
                    )
        return data


def at(loc: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """An error found across fields, carrying the place in the file it is about (pydantic gives it none)."""
    return PydanticCustomError("misplaced", message, {"at": loc})
