"""Durations in settings (`window: 30m`, `timeout: 15s`): the one pydantic type playbooks and channel configs use."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from playbook.timeparse import format_duration, parse_duration


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc)) from None
    if isinstance(value, int) and not isinstance(value, bool):
        raise PydanticCustomError("duration", f"'{value}' has no unit: write {value}m or {value}s")
    if not isinstance(value, timedelta):
        raise PydanticCustomError("duration", "expected a duration such as 45s, 30m, 2h or 1h30m, not {value}",
                                  {"value": repr(value)})
    return value


# Written back (JSON: `channels --json`, listings) the way users write it, 15s rather than ISO 8601's PT15S.
Duration = Annotated[timedelta, BeforeValidator(_duration),
                     PlainSerializer(format_duration, return_type=str, when_used="json")]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise PydanticCustomError("duration", "must be longer than 0s, e.g. 30m")
    return value


# A window or a cadence of nothing would make every deadline already past and every update already due.
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
