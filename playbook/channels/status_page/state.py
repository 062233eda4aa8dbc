"""The status site's content: incidents and their updates in every language, folded from the ledger's posts (and
a local folder's state.json, the page's own record)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Status = Literal["investigating", "identified", "monitoring", "resolved"]
STATUSES: tuple[Status, ...] = ("investigating", "identified", "monitoring", "resolved")
# How bad, in Statuspage's words: an incident's impact and the page's indicator; worst last.
Impact = Literal["none", "minor", "major", "critical"]
IMPACTS: tuple[Impact, ...] = ("none", "minor", "major", "critical")
# A component's state, in Statuspage's words; worst last.
ComponentStatus = Literal["operational", "degraded_performance", "partial_outage", "major_outage"]
COMPONENT_STATUSES: tuple[ComponentStatus, ...] = ("operational", "degraded_performance", "partial_outage",
                                                   "major_outage")


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    body: str


class UpdateRecord(BaseModel):
    """One published update of an incident, in each language delivered so far."""

    model_config = ConfigDict(extra="forbid")

    id: str
    key: str
    phase: str
    status: Status
    created_at: datetime
    updated_at: datetime
    texts: dict[str, Text] = Field(default_factory=dict)
    # Pages written before impacts existed showed every open incident as major.
    impact: Impact = "major"
    components: dict[str, ComponentStatus] = Field(default_factory=dict)
    # When the message promised the next update (None for the last phase).
    next_update_at: datetime | None = None

    def text(self, preferred: Sequence[str]) -> tuple[str, Text]:
        """The text in the first preferred language it has, else in any: (language, text)."""
        for lang in (*preferred, *self.texts):
            if lang in self.texts:
                return lang, self.texts[lang]
        raise ValueError(f"update {self.id} has no text")


class IncidentRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    playbook: str
    drill: bool = False
    timezone: str = "UTC"
    created_at: datetime
    # Oldest first, as published.
    updates: list[UpdateRecord] = Field(default_factory=list)

    @property
    def status(self) -> Status:
        return self.updates[-1].status if self.updates else "investigating"

    @property
    def open(self) -> bool:
        return self.status != "resolved"

    @property
    def impact(self) -> Impact:
        return self.updates[-1].impact if self.updates else "none"

    @property
    def components(self) -> dict[str, ComponentStatus]:
        return self.updates[-1].components if self.updates else {}

    @property
    def next_update_at(self) -> datetime | None:
        return self.updates[-1].next_update_at if self.updates and self.open else None

    @property
    def updated_at(self) -> datetime:
        return max((u.updated_at for u in self.updates), default=self.created_at)

    def reached(self, status: Status) -> datetime | None:
        """When the incident first reached `status`, if its latest status is that one or later."""
        if STATUSES.index(self.status) < STATUSES.index(status):
            return None
        return next((u.created_at for u in self.updates if STATUSES.index(u.status) >= STATUSES.index(status)), None)


class SiteState(BaseModel):
    """Everything the site shows; the site's files are all rendered from it."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    updated_at: datetime | None = None
    # Newest first.
    incidents: list[IncidentRecord] = Field(default_factory=list)

    def record(self, *, incident_id: str, playbook: str, drill: bool, timezone: str, key: str, update_id: str,
               phase: str, status: Status, lang: str, text: Text, now: datetime, history: int,
               impact: Impact = "major", components: Mapping[str, ComponentStatus] | None = None,
               next_update_at: datetime | None = None, started_at: datetime | None = None) -> bool:
        """Add or replace one language of one update; False when the page already showed exactly that.

        A new incident starts at `started_at` (its detected_at, as the messages say), else now."""
        incident = next((i for i in self.incidents if i.id == incident_id), None)
        if incident is None:
            incident = IncidentRecord(id=incident_id, playbook=playbook, drill=drill, timezone=timezone,
                                      created_at=started_at or now)
            self.incidents.insert(0, incident)
        update = next((u for u in incident.updates if u.key == key), None)
        if update is None:
            update = UpdateRecord(id=update_id, key=key, phase=phase, status=status, created_at=now, updated_at=now,
                                  impact=impact, components=dict(components or {}), next_update_at=next_update_at)
            incident.updates.append(update)
        elif update.texts.get(lang) == text:
            return False
        update.texts[lang] = text
        update.updated_at = max(update.updated_at, now)
        # A post read back from the ledger may be older than what the page already shows.
        self.updated_at = now if self.updated_at is None else max(self.updated_at, now)
        self.incidents.sort(key=lambda i: i.created_at, reverse=True)
        self.incidents = [i for n, i in enumerate(self.incidents) if i.open or n < history]
        return True

    def shows(self, incident_id: str, key: str, lang: str, text: Text) -> bool:
        """Whether the page already shows exactly `text` in `lang` for that update."""
        incident = next((i for i in self.incidents if i.id == incident_id), None)
        update = next((u for u in incident.updates if u.key == key), None) if incident else None
        return update is not None and update.texts.get(lang) == text

    def languages(self) -> list[str]:
        return list(dict.fromkeys(lang for i in self.incidents for u in i.updates for lang in u.texts))



class StateError(Exception):
    """The site's state.json cannot be read: the page is not rewritten, so nothing already shown is lost."""


def read_state(path: Path) -> SiteState:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return SiteState()
    try:
        return SiteState.model_validate_json(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise StateError(
            f"{path} is damaged ({problem}): restore it from a backup, or move it away to start a new history"
        ) from None
