"""What the status site shows in one language: its addresses, its words, dates as people read them, each incident."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files

from markupsafe import Markup

from playbook.channels.status_page.state import (
    COMPONENT_STATUSES,
    IMPACTS,
    ComponentStatus,
    Impact,
    IncidentRecord,
    SiteState,
)
from playbook.publishers.text_html import text_to_html


@dataclass(frozen=True)
class Site:
    """The page's name, public address and languages; the first language is the one of index.html."""

    name: str
    url: str
    languages: tuple[str, ...]
    # The components the channel lists, in its order.
    components: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    @property
    def default(self) -> str:
        return self.languages[0]

    def page_file(self, lang: str) -> str:
        return "index.html" if lang == self.default else f"index.{lang}.html"

    def page_url(self, lang: str) -> str:
        return f"{self.base}/" if lang == self.default else f"{self.base}/index.{lang}.html"

    def incident_url(self, incident_id: str, lang: str) -> str:
        return f"{self.page_url(lang)}#{incident_id}"

    @property
    def page_id(self) -> str:
        return hashlib.sha256(self.base.encode()).hexdigest()[:12]


@cache
def _labels() -> dict[str, dict[str, str]]:
    """The page's own words per language, from labels.json (read once, when a page is first written)."""
    table: dict[str, dict[str, str]] = json.loads(
        files(__package__).joinpath("labels.json").read_text(encoding="utf-8"))
    return table


def labels(lang: str) -> tuple[str, dict[str, str]]:
    """The page's words in `lang`, or in English for a language labels.json lacks: (their language, the words)."""
    table = _labels()
    base = lang.split("-")[0].split("_")[0].lower()
    return (base, table[base]) if base in table else ("en", table["en"])


def indicator(state: SiteState) -> Impact:
    """The worst impact of the incidents still open: Statuspage's page-wide indicator."""
    return max((i.impact for i in state.incidents if i.open and i.updates), key=IMPACTS.index, default="none")


def component_statuses(site: Site, state: SiteState) -> dict[str, ComponentStatus]:
    """Each component's state: the worst any open incident gives it, else operational."""
    worst: dict[str, ComponentStatus] = {name: "operational" for name in site.components}
    for incident in state.incidents:
        if not incident.open:
            continue
        for name, status in incident.components.items():
            if name in worst and COMPONENT_STATUSES.index(status) > COMPONENT_STATUSES.index(worst[name]):
                worst[name] = status
    return worst


def component_id(site: Site, name: str) -> str:
    return hashlib.sha256(f"{site.base}#{name}".encode()).hexdigest()[:12]


def when(moment: datetime, lang: str, timezone: str) -> str:
    """A date and time as people of `lang` write it, in the incident's time zone: "25 nov. 2026, 14:03 CET"."""
    from zoneinfo import ZoneInfo

    from babel import Locale
    from babel.dates import format_skeleton, format_time

    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    locale = Locale.parse(lang.replace("-", "_"))
    pattern = str(locale.datetime_formats["medium"]).replace("'", "")
    date_text = format_skeleton("yMMMd", local, locale=locale)
    time_text = format_time(local, "short", tzinfo=zone, locale=locale)
    return f"{pattern.format(time_text, date_text)} {local.tzname()}"


def clock(moment: datetime, lang: str, timezone: str) -> str:
    """A time of day as people of `lang` write it, labelled with the zone: "06:02 CET", "6:02 AM CET"."""
    from zoneinfo import ZoneInfo

    from babel import Locale
    from babel.dates import format_time

    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    return f"{format_time(local, 'short', tzinfo=zone, locale=Locale.parse(lang.replace('-', '_')))} {local.tzname()}"


def iso(moment: datetime | None) -> str | None:
    """`moment` as the JSON and the page's machine-readable times write it: UTC, milliseconds, "Z"."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- what one language's page shows -----------------------------------------------------------------------

@dataclass(frozen=True)
class ShownUpdate:
    id: str
    status: str
    label: str
    at: str
    when: str
    title: str
    body: Markup
    lang: str


@dataclass(frozen=True)
class ShownIncident:
    id: str
    name: str
    lang: str
    status: str
    label: str
    open: bool
    drill: bool
    url: str
    started_at: str
    started: str
    resolved_at: str | None
    resolved: str | None
    # Newest first.
    updates: list[ShownUpdate]
    impact: str = "major"
    next_update_at: str | None = None
    next_update: str | None = None

    @property
    def headline(self) -> ShownUpdate:
        return self.updates[0]


def shown(incident: IncidentRecord, lang: str, site: Site) -> ShownIncident:
    """An incident as the page in `lang` shows it; texts not delivered in `lang` show in another language."""
    preferred = (lang, site.default)
    words = labels(lang)[1]
    updates = [
        ShownUpdate(u.id, u.status, words[u.status], iso(u.created_at) or "", when(u.created_at, lang,
                    incident.timezone), text.title, text_to_html(text.body), text_lang)
        for u in reversed(incident.updates)
        for text_lang, text in [u.text(preferred)]
    ]
    name_lang, first = incident.updates[0].text(preferred)
    resolved_at = incident.reached("resolved")
    coming = incident.next_update_at
    return ShownIncident(
        id=incident.id, name=first.title, lang=name_lang, status=incident.status, label=words[incident.status],
        open=incident.open, drill=incident.drill, url=site.incident_url(incident.id, lang),
        started_at=iso(incident.created_at) or "", started=when(incident.created_at, lang, incident.timezone),
        resolved_at=iso(resolved_at), resolved=when(resolved_at, lang, incident.timezone) if resolved_at else None,
        updates=updates, impact=incident.impact, next_update_at=iso(coming),
        next_update=words["next_update"].format(time=clock(coming, lang, incident.timezone)) if coming else None,
    )
