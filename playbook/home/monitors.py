"""Monitors in a playbook (`monitors:`, `watch:`): what is watched for the provider's outage, and how often."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from playbook.durations import PositiveDuration
from playbook.errors import did_you_mean
from playbook.home.strict import Strict, at, check_id

# Atlassian Statuspage's component statuses, as its summary.json writes them.
COMPONENT_STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance")
# The settings each monitor type reads; a setting of another type is a mistake worth saying, not ignoring.
_MONITOR_SETTINGS = {
    "statuspage": ({"url", "component"}, {"down_when"}),
    "whatsapp": ({"phone_number_id", "access_token"}, {"api_base"}),
    "http": ({"url"}, {"expect"}),
}


class Expect(Strict):
    status: int = Field(default=200, ge=100, le=599)
    contains: str | None = None


class Monitor(Strict):
    """One thing watched for the provider's outage: its status page, our number's Cloud API health, a URL."""

    name: str
    type: Literal["statuspage", "whatsapp", "http"]
    url: str | None = None
    component: str | None = None
    down_when: list[str] = Field(default=["partial_outage", "major_outage"], min_length=1)
    phone_number_id: str | None = None
    access_token: str | None = None
    api_base: str = "https://graph.facebook.com/v21.0"
    expect: Expect = Expect()
    timeout: PositiveDuration = timedelta(seconds=10)

    @field_validator("name")
    @classmethod
    def _name_pattern(cls, value: str) -> str:
        return check_id(value)

    @field_validator("url", "api_base")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        # ${NAME} may stand for the whole address: it is checked once read, by the probe.
        if value is not None and not value.startswith(("http://", "https://", "${")):
            raise PydanticCustomError("url", "'{value}' is not a web address: write it with https://",
                                      {"value": value})
        return value

    @field_validator("phone_number_id", mode="before")
    @classmethod
    def _digits_as_text(cls, value: Any) -> Any:
        # An unquoted number id in YAML is an int; it is still the id the user wrote.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("down_when")
    @classmethod
    def _known_statuses(cls, value: list[str]) -> list[str]:
        for status in value:
            if status not in COMPONENT_STATUSES:
                raise PydanticCustomError("status", "unknown component status '{status}'{hint}; known: {known}",
                                          {"status": status, "hint": did_you_mean(status, COMPONENT_STATUSES),
                                           "known": ", ".join(COMPONENT_STATUSES)})
        return value

    @model_validator(mode="after")
    def _settings_of_type(self) -> Monitor:
        required, optional = _MONITOR_SETTINGS[self.type]
        for key in sorted(required):
            if not getattr(self, key):
                raise at((), f"monitor '{self.name}' ({self.type}) needs '{key}'")
        for key in sorted(self.model_fields_set - required - optional - {"name", "type", "timeout"}):
            users = [kind for kind, (needed, extra) in _MONITOR_SETTINGS.items() if key in needed | extra]
            raise at((key,), f"monitor '{self.name}' ({self.type}) has no setting '{key}': "
                              f"it is for {' and '.join(users)} monitors")
        return self


class Watch(Strict):
    """How monitors are run: a probe `every`, down after `fails` failures in a row, up after `recovers` successes."""

    every: PositiveDuration = timedelta(minutes=1)
    fails: int = Field(default=3, ge=1)
    recovers: int = Field(default=3, ge=1)
    on_detect: Literal["alert", "trigger"] = "alert"
    on_recover: Literal["alert", "resolve"] = "alert"
    alert: list[str] = Field(default=[])
