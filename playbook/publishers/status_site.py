"""The status site's content (incidents and their updates in every language) and its files: HTML, JSON, Atom, banner."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Literal
from xml.etree import ElementTree

from markupsafe import Markup, escape
from pydantic import BaseModel, ConfigDict, Field

from playbook.textsafe import text_only

if TYPE_CHECKING:
    import jinja2

Status = Literal["investigating", "identified", "monitoring", "resolved"]
STATUSES: tuple[Status, ...] = ("investigating", "identified", "monitoring", "resolved")
# How bad, in Statuspage's words: an incident's impact and the page's indicator; worst last.
Impact = Literal["none", "minor", "major", "critical"]
IMPACTS: tuple[Impact, ...] = ("none", "minor", "major", "critical")
# A component's state, in Statuspage's words; worst last.
ComponentStatus = Literal["operational", "degraded_performance", "partial_outage", "major_outage"]
COMPONENT_STATUSES: tuple[ComponentStatus, ...] = ("operational", "degraded_performance", "partial_outage",
                                                   "major_outage")

# The page's own words. A language missing here gets the English ones, marked lang="en" on the page.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Service status", "language": "Language", "ongoing": "Ongoing incidents",
        "past": "Past incidents", "no_past": "No incidents reported recently.", "updated": "Last updated:",
        "started": "Started", "resolved_on": "Resolved", "updates": "Updates", "drill": "Drill",
        "feed": "Subscribe to updates (Atom feed)", "json": "Status as JSON", "details": "Details",
        "all_clear": "We’re not aware of any issue affecting our services.",
        "none": "All Systems Operational", "minor": "Minor Service Outage", "major": "Partial System Outage",
        "critical": "Major System Outage", "investigating": "Investigating", "identified": "Identified",
        "monitoring": "Monitoring", "resolved": "Resolved", "components": "Services",
        "operational": "Operational", "degraded_performance": "Degraded performance",
        "partial_outage": "Partial outage", "major_outage": "Major outage", "next_update": "Next update by {time}",
    },
    "fr": {
        "title": "État du service", "language": "Langue", "ongoing": "Incidents en cours",
        "past": "Incidents passés", "no_past": "Aucun incident signalé récemment.", "updated": "Dernière mise à jour :",
        "started": "Début", "resolved_on": "Résolu", "updates": "Mises à jour", "drill": "Exercice",
        "feed": "S’abonner aux mises à jour (flux Atom)", "json": "État au format JSON", "details": "Détails",
        "all_clear": "Nous n’avons connaissance d’aucun problème affectant nos services.",
        "none": "Tous les services fonctionnent", "minor": "Perturbation mineure",
        "major": "Perturbation partielle", "critical": "Panne majeure", "investigating": "Enquête en cours",
        "identified": "Cause identifiée", "monitoring": "Sous surveillance", "resolved": "Résolu",
        "components": "Services", "operational": "Opérationnel", "degraded_performance": "Performances dégradées",
        "partial_outage": "Panne partielle", "major_outage": "Panne majeure",
        "next_update": "Prochaine mise à jour d’ici {time}",
    },
    "de": {
        "title": "Dienststatus", "language": "Sprache", "ongoing": "Aktuelle Störungen",
        "past": "Frühere Störungen", "no_past": "In letzter Zeit wurden keine Störungen gemeldet.",
        "updated": "Zuletzt aktualisiert:", "started": "Beginn", "resolved_on": "Behoben", "updates": "Updates",
        "drill": "Übung", "feed": "Updates abonnieren (Atom-Feed)", "json": "Status als JSON", "details": "Details",
        "all_clear": "Uns sind keine Probleme mit unseren Diensten bekannt.",
        "none": "Alle Systeme funktionieren", "minor": "Geringfügige Störung", "major": "Teilweise Störung",
        "critical": "Schwere Störung", "investigating": "Wird untersucht", "identified": "Ursache gefunden",
        "monitoring": "Wird beobachtet", "resolved": "Behoben", "components": "Dienste",
        "operational": "Betriebsbereit", "degraded_performance": "Eingeschränkte Leistung",
        "partial_outage": "Teilausfall", "major_outage": "Schwerer Ausfall",
        "next_update": "Nächstes Update bis {time}",
    },
    "es": {
        "title": "Estado del servicio", "language": "Idioma", "ongoing": "Incidencias en curso",
        "past": "Incidencias anteriores", "no_past": "No se han registrado incidencias recientemente.",
        "updated": "Última actualización:", "started": "Inicio", "resolved_on": "Resuelta",
        "updates": "Actualizaciones", "drill": "Simulacro", "feed": "Suscribirse a las actualizaciones (Atom)",
        "json": "Estado en JSON", "details": "Detalles",
        "all_clear": "No tenemos constancia de ningún problema en nuestros servicios.",
        "none": "Todos los servicios funcionan", "minor": "Incidencia menor", "major": "Incidencia parcial",
        "critical": "Incidencia grave", "investigating": "Investigando", "identified": "Causa identificada",
        "monitoring": "En observación", "resolved": "Resuelta", "components": "Servicios",
        "operational": "Operativo", "degraded_performance": "Rendimiento degradado",
        "partial_outage": "Interrupción parcial", "major_outage": "Interrupción grave",
        "next_update": "Próxima actualización antes de las {time}",
    },
    "it": {
        "title": "Stato del servizio", "language": "Lingua", "ongoing": "Incidenti in corso",
        "past": "Incidenti passati", "no_past": "Nessun incidente segnalato di recente.",
        "updated": "Ultimo aggiornamento:", "started": "Inizio", "resolved_on": "Risolto", "updates": "Aggiornamenti",
        "drill": "Esercitazione", "feed": "Iscriviti agli aggiornamenti (feed Atom)", "json": "Stato in JSON",
        "details": "Dettagli", "all_clear": "Non siamo a conoscenza di problemi che riguardano i nostri servizi.",
        "none": "Tutti i servizi funzionano", "minor": "Disservizio minore", "major": "Disservizio parziale",
        "critical": "Disservizio grave", "investigating": "In analisi", "identified": "Causa individuata",
        "monitoring": "In monitoraggio", "resolved": "Risolto", "components": "Servizi",
        "operational": "Operativo", "degraded_performance": "Prestazioni ridotte",
        "partial_outage": "Interruzione parziale", "major_outage": "Interruzione grave",
        "next_update": "Prossimo aggiornamento entro le {time}",
    },
}


# -- the content, as kept in the output folder's state.json ------------------------------------------------

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
        update.updated_at = now
        self.updated_at = now
        self.incidents.sort(key=lambda i: i.created_at, reverse=True)
        self.incidents = [i for n, i in enumerate(self.incidents) if i.open or n < history]
        return True

    def languages(self) -> list[str]:
        return list(dict.fromkeys(lang for i in self.incidents for u in i.updates for lang in u.texts))


# -- how the site is addressed -----------------------------------------------------------------------------

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


def labels(lang: str) -> tuple[str, dict[str, str]]:
    """The page's words in `lang` (or English): (their language, the words)."""
    base = lang.split("-")[0].split("_")[0].lower()
    return (base, LABELS[base]) if base in LABELS else ("en", LABELS["en"])


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


# -- text to HTML ------------------------------------------------------------------------------------------

_LINK = re.compile(r"(?P<url>https?://[^\s<>\"']+)|(?P<email>[\w.%+-]+@[\w-]+(?:\.[\w-]+)+)"
                   r"|(?P<phone>\+\d[\d .-]{5,}\d)")
_BULLET = re.compile(r"^[-•*]\s+(.*)$")
_TRAILING = ".,;:!?)]»”’"


def linkify(text: str) -> Markup:
    """Escaped text whose web addresses, email addresses and international phone numbers are links."""
    out: list[Markup] = []
    position = 0
    for match in _LINK.finditer(text):
        found = match.group()
        # "see https://example.com/chat." ends the sentence, not the address.
        target = found.rstrip(_TRAILING) if match.group("url") else found
        out.append(escape(text[position:match.start()]))
        if match.group("phone"):
            href = "tel:+" + re.sub(r"\D", "", target)
        else:
            href = target if match.group("url") else f"mailto:{target}"
        out.append(Markup('<a href="{}">{}</a>').format(href, target))
        position = match.start() + len(target)
    out.append(escape(text[position:]))
    return Markup("").join(out)


def body_html(text: str) -> Markup:
    """Plain text as HTML: blank lines part paragraphs, "- " lines make a list, line breaks and links kept."""
    parts: list[Markup] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            parts.append(Markup("<p>{}</p>").format(Markup("<br>\n").join(linkify(line) for line in paragraph)))
            paragraph.clear()
        if items:
            parts.append(Markup("<ul>{}</ul>").format(
                Markup("").join(Markup("<li>{}</li>").format(linkify(item)) for item in items)))
            items.clear()

    for raw in text.strip().splitlines():
        line = raw.strip()
        bullet = _BULLET.match(line)
        if bullet:
            if paragraph:
                flush()
            items.append(bullet.group(1))
        elif not line:
            flush()
        else:
            if items:
                flush()
            paragraph.append(line)
    flush()
    return Markup("\n").join(parts)


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


def _iso(moment: datetime | None) -> str | None:
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
        ShownUpdate(u.id, u.status, words[u.status], _iso(u.created_at) or "", when(u.created_at, lang,
                    incident.timezone), text.title, body_html(text.body), text_lang)
        for u in reversed(incident.updates)
        for text_lang, text in [u.text(preferred)]
    ]
    name_lang, first = incident.updates[0].text(preferred)
    resolved_at = incident.reached("resolved")
    coming = incident.next_update_at
    return ShownIncident(
        id=incident.id, name=first.title, lang=name_lang, status=incident.status, label=words[incident.status],
        open=incident.open, drill=incident.drill, url=site.incident_url(incident.id, lang),
        started_at=_iso(incident.created_at) or "", started=when(incident.created_at, lang, incident.timezone),
        resolved_at=_iso(resolved_at), resolved=when(resolved_at, lang, incident.timezone) if resolved_at else None,
        updates=updates, impact=incident.impact, next_update_at=_iso(coming),
        next_update=words["next_update"].format(time=clock(coming, lang, incident.timezone)) if coming else None,
    )


# -- the files ---------------------------------------------------------------------------------------------

@cache
def _template() -> jinja2.Template:
    # Imported here: listing or checking a status-page channel renders nothing.
    import jinja2

    source = files("playbook.publishers").joinpath("status_page.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    return env.from_string(source)


def _language_name(lang: str) -> str:
    from babel import Locale, UnknownLocaleError

    try:
        name = Locale.parse(lang.replace("-", "_")).get_display_name(lang.replace("-", "_")) or lang
    except (UnknownLocaleError, ValueError):
        return lang
    return name[:1].upper() + name[1:]


def _direction(lang: str) -> str:
    from babel import Locale, UnknownLocaleError

    try:
        return "rtl" if Locale.parse(lang.replace("-", "_")).character_order == "right-to-left" else "ltr"
    except (UnknownLocaleError, ValueError):
        return "ltr"


def page_html(site: Site, state: SiteState, lang: str, now: datetime) -> str:
    ui_lang, words = labels(lang)
    incidents = [shown(i, lang, site) for i in state.incidents if i.updates]
    zone = state.incidents[0].timezone if state.incidents else "UTC"
    updated = state.updated_at or now
    statuses = component_statuses(site, state)
    return _template().render(
        site=site, lang=lang, dir=_direction(lang), ui_lang=ui_lang, t=words, indicator=indicator(state),
        components=[{"name": name, "status": status, "label": words[status]} for name, status in statuses.items()],
        ongoing=[i for i in incidents if i.open], past=[i for i in incidents if not i.open],
        updated_at=_iso(updated), updated=when(updated, lang, zone),
        languages=[{"code": code, "name": _language_name(code), "href": site.page_file(code), "current": code == lang}
                   for code in site.languages],
    )


def _incident_json(site: Site, incident: IncidentRecord, lang: str) -> dict[str, Any]:
    view = shown(incident, lang, site)
    updates = []
    for update in reversed(incident.updates):
        _, text = update.text((lang, site.default))
        updates.append({
            "id": update.id, "status": update.status, "body": text.body, "incident_id": incident.id,
            "created_at": _iso(update.created_at), "updated_at": _iso(update.updated_at),
            "display_at": _iso(update.created_at),
        })
    return {
        "id": incident.id, "name": view.name, "status": incident.status, "impact": incident.impact,
        "created_at": _iso(incident.created_at), "updated_at": _iso(incident.updated_at),
        "monitoring_at": _iso(incident.reached("monitoring")), "resolved_at": _iso(incident.reached("resolved")),
        "started_at": _iso(incident.created_at), "shortlink": view.url, "page_id": site.page_id,
        "incident_updates": updates,
        "components": [_component_json(site, name, status, incident.updated_at, n)
                       for n, (name, status) in enumerate(incident.components.items()) if name in site.components],
        "next_update_at": _iso(incident.next_update_at),
    }


def _component_json(site: Site, name: str, status: str, updated: datetime | None, position: int) -> dict[str, Any]:
    return {"id": component_id(site, name), "name": name, "status": status, "position": position + 1,
            "updated_at": _iso(updated), "page_id": site.page_id}


def _page_json(site: Site, state: SiteState, lang: str, now: datetime) -> dict[str, Any]:
    return {
        "id": site.page_id, "name": site.name, "url": site.page_url(lang),
        "time_zone": state.incidents[0].timezone if state.incidents else "UTC",
        "updated_at": _iso(state.updated_at or now),
    }


def summary_json(site: Site, state: SiteState, lang: str, now: datetime) -> dict[str, Any]:
    """Shaped like Statuspage's /api/v2/summary.json: the indicator and the incidents still open."""
    level = indicator(state)
    return {
        "page": _page_json(site, state, lang, now),
        "status": {"indicator": level, "description": labels(lang)[1][level]},
        "components": [_component_json(site, name, status, state.updated_at, n)
                       for n, (name, status) in enumerate(component_statuses(site, state).items())],
        "incidents": [_incident_json(site, i, lang) for i in state.incidents if i.open and i.updates],
        "scheduled_maintenances": [],
    }


def incidents_json(site: Site, state: SiteState, lang: str, now: datetime) -> dict[str, Any]:
    """Shaped like Statuspage's /api/v2/incidents.json: every incident of the history, newest first."""
    return {
        "page": _page_json(site, state, lang, now),
        "incidents": [_incident_json(site, i, lang) for i in state.incidents if i.updates],
    }


ATOM = "http://www.w3.org/2005/Atom"


def atom_feed(site: Site, state: SiteState, lang: str, now: datetime) -> bytes:
    """An Atom feed of every update in `lang`, newest first; ElementTree does the XML escaping."""
    ElementTree.register_namespace("", ATOM)

    def add(parent: ElementTree.Element, tag: str, text: str | None = None, **attributes: str) -> ElementTree.Element:
        element = ElementTree.SubElement(parent, f"{{{ATOM}}}{tag}", {k: text_only(v) for k, v in attributes.items()})
        element.text = None if text is None else text_only(text)
        return element

    words = labels(lang)[1]
    feed = ElementTree.Element(f"{{{ATOM}}}feed", {"xml:lang": lang})
    add(feed, "id", f"{site.base}/feed.{lang}.atom")
    add(feed, "title", f"{site.name} – {words['title']}")
    add(feed, "updated", _iso(state.updated_at or now))
    add(feed, "link", rel="self", type="application/atom+xml", href=f"{site.base}/feed.{lang}.atom")
    add(feed, "link", rel="alternate", type="text/html", href=site.page_url(lang))
    add(add(feed, "author"), "name", site.name)
    entries = [(update, incident) for incident in state.incidents for update in incident.updates if update.texts]
    entries.sort(key=lambda pair: pair[0].created_at, reverse=True)
    for update, incident in entries:
        text_lang, text = update.text((lang, site.default))
        entry = add(feed, "entry")
        add(entry, "id", uuid.uuid5(uuid.NAMESPACE_URL, f"{site.base}/#{incident.id}/{update.id}").urn)
        add(entry, "title", f"{words[update.status]}: {text.title}")
        add(entry, "updated", _iso(update.updated_at))
        add(entry, "published", _iso(update.created_at))
        add(entry, "link", rel="alternate", type="text/html", href=site.incident_url(incident.id, lang))
        add(entry, "category", term=update.status, label=words[update.status])
        add(entry, "content", str(body_html(text.body)), type="html", **{"xml:lang": text_lang})
    document: bytes = ElementTree.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def banner_json(site: Site, state: SiteState) -> dict[str, Any]:
    """What banner.js shows on the main website, per language; `open` false means show nothing."""
    current = [i for i in state.incidents if i.open and i.updates]
    messages: dict[str, list[dict[str, str]]] = {}
    for lang in site.languages:
        words = labels(lang)[1]
        messages[lang] = []
        for incident in current:
            view = shown(incident, lang, site)
            messages[lang].append({
                "id": incident.id, "status": incident.status, "label": words[incident.status],
                "title": view.headline.title, "lang": view.headline.lang, "url": view.url,
                "link_text": words["details"], "next_update": view.next_update or "",
            })
    return {"open": bool(current), "default": site.default, "updated_at": _iso(state.updated_at),
            "impact": indicator(state), "messages": messages if current else {}}


# Loaded by the main website with <script src="https://status.example.com/banner.js" defer></script>.
# It only ever sets textContent, so nothing in banner.json can run as code on the host page.
BANNER_JS = """\
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch) { return; }
  var source = new URL("banner.json", script.src);
  // [background, border] per impact, as the status page's summary shows it.
  var COLOURS = { none: ["#eefaf1", "#1a7f37"], minor: ["#fff8c5", "#bf8700"], major: ["#fff4e5", "#d9480f"],
                  critical: ["#ffebe9", "#cf222e"] };

  function pick(data) {
    var lang = (document.documentElement.getAttribute("lang") || "").toLowerCase();
    var messages = data.messages || {};
    return messages[lang] || messages[lang.split("-")[0]] || messages[data["default"]] || [];
  }

  function show(data) {
    if (!data || !data.open) { return; }
    var items = pick(data);
    if (!items.length || document.getElementById("status-page-banner")) { return; }
    var bar = document.createElement("div");
    bar.id = "status-page-banner";
    bar.setAttribute("role", "status");
    var colours = COLOURS[data.impact] || COLOURS.major;
    bar.setAttribute("data-impact", data.impact || "major");
    bar.style.cssText = "background:" + colours[0] + ";color:#1f2328;border-bottom:3px solid " + colours[1] + ";" +
      "padding:10px 16px;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;text-align:center";
    items.forEach(function (item) {
      var line = document.createElement("p");
      line.style.margin = "0";
      line.lang = item.lang;
      var label = document.createElement("strong");
      label.textContent = item.label + " \\u2014 ";
      line.appendChild(label);
      line.appendChild(document.createTextNode(item.title + " "));
      if (item.next_update) { line.appendChild(document.createTextNode("(" + item.next_update + ") ")); }
      if (/^https?:\\/\\//.test(item.url)) {
        var link = document.createElement("a");
        link.href = item.url;
        link.textContent = item.link_text;
        link.style.color = "#0550ae";
        line.appendChild(link);
      }
      bar.appendChild(line);
    });
    document.body.insertBefore(bar, document.body.firstChild);
  }

  fetch(source, { cache: "no-store" })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (data) {
      if (document.body) { show(data); }
      else { document.addEventListener("DOMContentLoaded", function () { show(data); }); }
    })
    .catch(function () {});
})();
"""


def _json(data: Mapping[str, Any]) -> bytes:
    # json.dumps escapes control characters, but writes a lone surrogate as is, which UTF-8 cannot encode.
    return (text_only(json.dumps(data, ensure_ascii=False, indent=2)) + "\n").encode()


def render_site(site: Site, state: SiteState, now: datetime) -> dict[str, bytes]:
    """Every public file of the site, by file name."""
    out: dict[str, bytes] = {}
    for lang in site.languages:
        html = text_only(page_html(site, state, lang, now)).encode()
        out[f"index.{lang}.html"] = html
        if lang == site.default:
            out["index.html"] = html
            out["status.json"] = _json(summary_json(site, state, lang, now))
            out["incidents.json"] = _json(incidents_json(site, state, lang, now))
        out[f"status.{lang}.json"] = _json(summary_json(site, state, lang, now))
        out[f"incidents.{lang}.json"] = _json(incidents_json(site, state, lang, now))
        out[f"feed.{lang}.atom"] = atom_feed(site, state, lang, now)
    out["banner.json"] = _json(banner_json(site, state))
    out["banner.js"] = BANNER_JS.encode()
    return out
