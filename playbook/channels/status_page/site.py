"""The status site's files, all rendered from its state: HTML pages, Statuspage-shaped JSON, Atom feeds, the banner."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from playbook.channels.status_page.state import IncidentRecord, SiteState
from playbook.channels.status_page.view import (
    Site,
    component_id,
    component_statuses,
    indicator,
    iso,
    labels,
    shown,
    when,
)
from playbook.publishers.text_html import text_to_html
from playbook.textsafe import text_only

if TYPE_CHECKING:
    import jinja2


@cache
def _template() -> jinja2.Template:
    # Imported here: listing or checking a status-page channel renders nothing.
    import jinja2

    source = files(__package__).joinpath("page.html.j2").read_text(encoding="utf-8")
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
        updated_at=iso(updated), updated=when(updated, lang, zone),
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
            "created_at": iso(update.created_at), "updated_at": iso(update.updated_at),
            "display_at": iso(update.created_at),
        })
    return {
        "id": incident.id, "name": view.name, "status": incident.status, "impact": incident.impact,
        "created_at": iso(incident.created_at), "updated_at": iso(incident.updated_at),
        "monitoring_at": iso(incident.reached("monitoring")), "resolved_at": iso(incident.reached("resolved")),
        "started_at": iso(incident.created_at), "shortlink": view.url, "page_id": site.page_id,
        "incident_updates": updates,
        "components": [_component_json(site, name, status, incident.updated_at, n)
                       for n, (name, status) in enumerate(incident.components.items()) if name in site.components],
        "next_update_at": iso(incident.next_update_at),
    }


def _component_json(site: Site, name: str, status: str, updated: datetime | None, position: int) -> dict[str, Any]:
    return {"id": component_id(site, name), "name": name, "status": status, "position": position + 1,
            "updated_at": iso(updated), "page_id": site.page_id}


def _page_json(site: Site, state: SiteState, lang: str, now: datetime) -> dict[str, Any]:
    return {
        "id": site.page_id, "name": site.name, "url": site.page_url(lang),
        "time_zone": state.incidents[0].timezone if state.incidents else "UTC",
        "updated_at": iso(state.updated_at or now),
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
    add(feed, "updated", iso(state.updated_at or now))
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
        add(entry, "updated", iso(update.updated_at))
        add(entry, "published", iso(update.created_at))
        add(entry, "link", rel="alternate", type="text/html", href=site.incident_url(incident.id, lang))
        add(entry, "category", term=update.status, label=words[update.status])
        add(entry, "content", str(text_to_html(text.body)), type="html", **{"xml:lang": text_lang})
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
    return {"open": bool(current), "default": site.default, "updated_at": iso(state.updated_at),
            "impact": indicator(state), "messages": messages if current else {}}


@cache
def _banner_js() -> bytes:
    # Loaded by the main website with <script src="https://status.example.com/banner.js" defer></script>.
    # It only ever sets textContent, so nothing in banner.json can run as code on the host page.
    return files(__package__).joinpath("banner.js").read_bytes()


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
    out["banner.js"] = _banner_js()
    return out
