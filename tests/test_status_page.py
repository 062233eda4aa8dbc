"""`type: status-page`: the static status site, served over HTTP and read by headless Chromium and feed readers."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import feedparser
import pytest

from playbook.channels.status_page import StatusPageConfig, StatusPagePublisher, status_of
from playbook.commands.publishing import Outcome, publish_phase, trigger
from playbook.commands.session import Session
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.planning.plan import stage_of
from playbook.publishers.base import ChannelContext, Delivery, Failure, Message, Receipt, Stage
from tests.conftest import ROOT, run_cli, write
from tests.fakes.browser import dump_dom, screenshot, serve_folder

# One headless Chromium at a time, in one worker: several at once on a small machine starve each other.
pytestmark = pytest.mark.xdist_group("chromium")

PLAYBOOK = "whatsapp-outage"
URL = "https://status.example.com"
INJECTION = "<script>alert(1)</script>"

TITLE_FR = "Messages WhatsApp perturbés\u00a0: nous restons joignables par e-mail, téléphone et chat"
TITLE_EN = "WhatsApp messages delayed: you can still reach us by email, phone and chat"
IDENTIFIED_FR = "Perturbations WhatsApp\u00a0: l’origine est identifiée"
IDENTIFIED_EN = "WhatsApp disruption: we know where the problem is"
RESOLVED_EN = "WhatsApp is back to normal: thank you for your patience"

CHANNELS = """\
channels:
  x:
    type: file
    path: outbox/x.jsonl
  website:
    type: status-page
    output_dir: public/status
    url: https://status.example.com
  customers:
    type: file
    path: outbox/customers.jsonl
"""


@pytest.fixture
def status_home(home: Path) -> Path:
    """The starter home with its website channel turned into a status page in public/status."""
    write(home / "channels.yaml", CHANNELS)
    return home


def site(home: Path) -> Path:
    return home / "public" / "status"


def start(home: Path, **given: str) -> Outcome:
    session = Session(Home(root=home))
    try:
        outcome = trigger(session, PLAYBOOK, given, None)
    finally:
        session.close()
    assert outcome.result is not None and outcome.result.ok, outcome.result
    return outcome


def follow(home: Path, incident: str, phase: str | None, **given: str) -> Outcome:
    session = Session(Home(root=home))
    try:
        outcome = publish_phase(session, incident, phase, given, resolve_it=phase is None)
    finally:
        session.close()
    assert outcome.result is not None and outcome.result.ok, outcome.result
    return outcome


def visible_text(dom: str) -> str:
    """The text of a DOM dump, without tags, entities decoded, spaces collapsed (no-break spaces kept)."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"(?s)<(style|script).*?</\1>", " ", dom)))
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def host_page(folder: Path, lang: str) -> str:
    """A page of the main website that includes the banner, as its own site would."""
    name = f"host-{lang}.html"
    write(folder / name, f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>Shop</title>'
                         '<script src="status/banner.js" defer></script></head>'
                         "<body><h1>Our shop</h1></body></html>")
    return name


# -- the page in a browser ---------------------------------------------------------------------------------

def test_the_page_shows_the_incident_in_both_languages_newest_update_first(status_home: Path,
                                                                         tmp_path: Path) -> None:
    incident = start(status_home).plan.incident_id
    follow(status_home, incident, "identified", cause="a network configuration issue")
    with serve_folder(site(status_home)) as base:
        french = dump_dom(f"{base}/")
        english = dump_dom(f"{base}/index.en.html")
        shot = screenshot(f"{base}/index.en.html", tmp_path / "status-page.png")

    assert '<html lang="fr"' in french and '<html lang="en"' in english
    fr_text, en_text = visible_text(french), visible_text(english)
    assert "État du service" in fr_text and "Perturbation partielle" in fr_text
    assert "Service status" in en_text and "Partial System Outage" in en_text
    phases = re.compile(r'<li class="update"[^>]*>\s*<p class="update-meta"><span class="pill pill-(\w+)">([^<]+)<')
    for dom, text, first, later, opening, labels in (
        (french, fr_text, TITLE_FR, IDENTIFIED_FR, "Depuis le", ("Cause identifiée", "Enquête en cours")),
        (english, en_text, TITLE_EN, IDENTIFIED_EN, "Since", ("Identified", "Investigating")),
    ):
        assert first in text and later in text
        # Newest first: the identified update, then the first one, each under its phase.
        assert text.index(later) < text.index(opening)
        assert phases.findall(dom) == [("identified", labels[0]), ("investigating", labels[1])]
    assert "Cause reported by WhatsApp: a network configuration issue" in en_text
    assert "Cause indiquée par WhatsApp\u00a0: a network configuration issue" in fr_text
    # What customers can do instead: the body's alternatives, as links.
    assert '<a href="mailto:support@example.com">support@example.com</a>' in english
    assert '<a href="https://example.com/chat">https://example.com/chat</a>' in english
    assert '<a href="tel:+33123456789">+33 1 23 45 67 89</a>' in french
    # The language switch is plain links: it works with JavaScript off, and the page has no script at all.
    assert re.search(r'<a href="index\.en\.html" hreflang="en" lang="en">English</a>', french)
    assert re.search(r'<a href="index\.html" hreflang="fr" lang="fr">Français</a>', english)
    assert '<a href="index.en.html" hreflang="en" lang="en" aria-current="page">' in english
    assert "<script" not in (site(status_home) / "index.html").read_text()
    assert "<h1>État du service</h1>" in french
    assert re.search(rf'<h3 class="incident-name" lang="en"><a href="#{incident}">{TITLE_EN}</a></h3>', english)
    assert f'id="{incident}"' in english
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_the_banner_shows_while_an_incident_is_open_and_nothing_after_resolve(status_home: Path) -> None:
    public = status_home / "public"
    incident = start(status_home).plan.incident_id
    french_host, english_host = host_page(public, "fr"), host_page(public, "en-GB")
    with serve_folder(public) as base:
        french = dump_dom(f"{base}/{french_host}")
        english = dump_dom(f"{base}/{english_host}")
        follow(status_home, incident, None)
        after = dump_dom(f"{base}/{english_host}")

    assert 'id="status-page-banner"' in french and 'id="status-page-banner"' in english
    assert TITLE_FR in visible_text(french) and "Enquête en cours" in visible_text(french)
    assert TITLE_EN in visible_text(english) and "Investigating" in visible_text(english)
    assert TITLE_FR not in visible_text(english)
    assert f'href="{URL}/index.en.html#{incident}"' in english
    assert f'href="{URL}/#{incident}"' in french
    assert "status-page-banner" not in after and "Our shop" in visible_text(after)
    assert json.loads((site(status_home) / "banner.json").read_text())["open"] is False


def test_resolved_incidents_stay_in_the_history_newest_first(status_home: Path) -> None:
    first = start(status_home).plan.incident_id
    follow(status_home, first, None)
    second = start(status_home, cause="a routing issue").plan.incident_id
    with serve_folder(site(status_home)) as base:
        english = dump_dom(f"{base}/index.en.html")
    text = visible_text(english)
    assert text.index("Ongoing incidents") < text.index(TITLE_EN) < text.index("Past incidents")
    assert text.index("Past incidents") < text.index(RESOLVED_EN)
    assert f'id="{second}"' in english and f'id="{first}"' in english


# -- machine-readable files ---------------------------------------------------------------------------------

def test_atom_feeds_carry_each_languages_updates_newest_first(status_home: Path) -> None:
    incident = start(status_home).plan.incident_id
    follow(status_home, incident, "identified")
    follow(status_home, incident, None)
    for lang, titles in (("fr", ("Résolu", "Cause identifiée", "Enquête en cours")),
                         ("en", ("Resolved", "Identified", "Investigating"))):
        feed = feedparser.parse((site(status_home) / f"feed.{lang}.atom").read_bytes())
        assert not feed.bozo, feed.bozo_exception
        assert feed.feed.title == f"status.example.com – {'État du service' if lang == 'fr' else 'Service status'}"
        assert [e.title.split(":")[0] for e in feed.entries] == list(titles)
        assert all(e.link.endswith(f"#{incident}") for e in feed.entries)
        assert len({e.id for e in feed.entries}) == 3
        assert feed.entries[0].content[0].language == lang
    english = feedparser.parse((site(status_home) / "feed.en.atom").read_bytes())
    assert english.entries[-1].title == f"Investigating: {TITLE_EN}"
    assert "support@example.com" in english.entries[-1].content[0].value
    assert english.entries[0].link == f"{URL}/index.en.html#{incident}"


def test_status_json_has_the_statuspage_summary_shape(status_home: Path) -> None:
    outcome = start(status_home)
    incident = outcome.plan.incident_id
    summary = json.loads((site(status_home) / "status.json").read_text())
    assert set(summary) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    assert set(summary["page"]) >= {"id", "name", "url", "updated_at"}
    assert summary["page"]["url"] == f"{URL}/" and summary["page"]["name"] == "status.example.com"
    assert summary["status"] == {"indicator": "major", "description": "Perturbation partielle"}
    [shown] = summary["incidents"]
    assert shown["id"] == incident and shown["name"] == TITLE_FR and shown["status"] == "investigating"
    assert shown["shortlink"] == f"{URL}/#{incident}" and shown["resolved_at"] is None
    [update] = shown["incident_updates"]
    assert set(update) >= {"id", "status", "body", "created_at"} and update["status"] == "investigating"
    assert update["body"].startswith("Depuis le")
    assert datetime.fromisoformat(update["created_at"].replace("Z", "+00:00")) <= datetime.now(UTC)
    english = json.loads((site(status_home) / "status.en.json").read_text())
    assert english["incidents"][0]["name"] == TITLE_EN
    assert english["status"]["description"] == "Partial System Outage"

    # The receipt points at the incident on the page and names the update.
    assert outcome.result is not None
    website = {d.lang: d for d in outcome.result.deliveries if d.channel == "website"}
    assert website["fr"].url == f"{URL}/#{incident}" and website["en"].url == f"{URL}/index.en.html#{incident}"
    assert website["fr"].remote_id == website["en"].remote_id == update["id"]

    follow(status_home, incident, "monitoring")
    follow(status_home, incident, None)
    summary = json.loads((site(status_home) / "status.json").read_text())
    assert summary["status"] == {"indicator": "none", "description": "Tous les services fonctionnent"}
    assert summary["incidents"] == []
    [past] = json.loads((site(status_home) / "incidents.json").read_text())["incidents"]
    assert past["status"] == "resolved" and past["resolved_at"] and past["monitoring_at"]
    assert [u["status"] for u in past["incident_updates"]] == ["resolved", "monitoring", "investigating"]
    assert past["resolved_at"] == past["incident_updates"][0]["created_at"]


# -- escaping ------------------------------------------------------------------------------------------------

def test_markup_in_a_variable_is_escaped_in_the_page_feeds_json_and_banner(status_home: Path) -> None:
    result = run_cli("trigger", PLAYBOOK, "--yes", "--var", f"provider={INJECTION}", home=status_home)
    assert result.code == 0, result.output
    folder = site(status_home)
    for name in ("index.html", "index.en.html", "feed.fr.atom", "feed.en.atom"):
        text = (folder / name).read_text()
        assert "<script" not in text, name
        assert "&lt;script&gt;alert(1)" in text or "&amp;lt;script&amp;gt;alert(1)" in text, name
    feed = feedparser.parse((folder / "feed.en.atom").read_bytes())
    assert INJECTION in feed.entries[0].title
    assert "<script" not in feed.entries[0].content[0].value
    banner = json.loads((folder / "banner.json").read_text())
    assert banner["messages"]["en"][0]["title"].startswith(INJECTION)
    host = host_page(status_home / "public", "en")
    with serve_folder(status_home / "public") as base:
        dom = dump_dom(f"{base}/{host}")
    assert f"{INJECTION} messages delayed" in visible_text(dom)
    assert "<script>alert(1)" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt; messages delayed" in dom


# What XML cannot carry, and terminals obey: written into a template, as a stray paste or a copied terminal log.
NOT_TEXT = "\x1b[2J\x0b\x0c\x00\x7f\uffff\ufffe"


def test_characters_xml_cannot_carry_never_reach_the_feed_page_or_json(status_home: Path) -> None:
    template = status_home / "templates" / PLAYBOOK / "investigating.en.j2"
    source = template.read_text(encoding="utf-8")
    write(template, source.replace("{% block title %}", "{% block title %}Alert" + NOT_TEXT + " ", 1))
    # YAML's "\e" is ESC: a site name may hold one too.
    write(status_home / "channels.yaml", CHANNELS.replace("url: https://status.example.com",
                                                          'url: https://status.example.com\n    name: "Acme\\e[2J"'))
    result = run_cli("trigger", PLAYBOOK, "--yes", home=status_home)
    assert result.code == 0, result.output

    folder = site(status_home)
    for name in ("feed.en.atom", "feed.fr.atom"):
        ElementTree.fromstring((folder / name).read_bytes())  # raises on any character XML refuses
        parsed = feedparser.parse((folder / name).read_bytes())
        assert not parsed.bozo, parsed.bozo_exception
        assert parsed.feed.title.startswith("Acme[2J")
    english = feedparser.parse((folder / "feed.en.atom").read_bytes())
    assert "Alert[2J\x7f " in english.entries[0].title, english.entries[0].title
    for path in folder.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", text), path.name
        if path.suffix == ".json":
            json.loads(text)


def test_the_pages_words_template_and_banner_script_ship_in_the_wheel_and_load_from_an_install(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    (wheel,) = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    package = ROOT / "playbook" / "channels" / "status_page"
    data = {f"playbook/channels/status_page/{path.name}" for path in package.iterdir() if path.suffix != ".py"
            and path.is_file()}
    assert {name.rsplit("/", 1)[1] for name in data} >= {"labels.json", "banner.js", "page.html.j2"}
    with zipfile.ZipFile(wheel) as archive:
        assert data <= set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    # Run from the unpacked wheel, as `pip install .` leaves it: the data files are read from there.
    probe = ("from playbook.channels.status_page import site, view; "
             "assert site.__file__.startswith(%r), site.__file__; "
             "print(view.labels('fr')[1]['title'], len(site._banner_js()) > 0, site._template().name)")
    said = subprocess.run([sys.executable, "-c", probe % str(tmp_path / "installed")], cwd=tmp_path, check=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path / "installed")})
    assert said.stdout == "État du service True None\n"


# -- writing the folder -------------------------------------------------------------------------------------

@dataclass
class Publishing:
    folder: Path
    publisher: StatusPagePublisher

    def delivery(self, seq: int, phase: str, lang: str, *, incident: str = "whatsapp-outage-20261125-1400",
                 title: str | None = None, drill: bool = False) -> Delivery:
        blocks = {"title": title or f"{phase} {seq} {lang}", "body": f"Update {seq} in {lang}.\n- https://example.com"}
        # What the engine hands over from the playbook: the publisher never reads it itself.
        playbook = Home(self.publisher.context.home).load_playbook(PLAYBOOK)
        return Delivery(
            key=f"{incident}/{seq}-{phase}/website/{lang}", incident_id=incident, playbook_id=PLAYBOOK,
            phase=phase, channel="website", lang=lang, message=Message(lang, blocks),
            deadline=datetime.now(UTC) + timedelta(minutes=30), drill=drill, timezone=playbook.timezone,
            stage=stage_of(playbook, phase),
        )

    def publish(self, *deliveries: Delivery) -> list[Receipt | Failure]:
        async def run() -> list[Receipt | Failure]:
            return list(await asyncio.gather(*(self.publisher.publish(d) for d in deliveries)))

        return asyncio.run(run())

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "state.json").read_text())
        return data


def publisher_for(home: Path, **settings: Any) -> StatusPagePublisher:
    config = StatusPageConfig.model_validate({"type": "status-page", "output_dir": "public/status", "url": URL,
                                              **settings})
    return StatusPagePublisher("website", config, ChannelContext(home, ["fr", "en"]))


@pytest.fixture
def publishing(home: Path) -> Publishing:
    return Publishing(site(home), publisher_for(home))


def test_a_delivery_published_twice_adds_one_update(publishing: Publishing) -> None:
    once = publishing.delivery(1, "investigating", "fr")
    [first] = publishing.publish(once)
    [second] = publishing.publish(once)
    assert isinstance(first, Receipt) and isinstance(second, Receipt)
    assert first.remote_id == second.remote_id and second.note == "already on the page"
    [incident] = publishing.state()["incidents"]
    assert len(incident["updates"]) == 1
    [shown] = json.loads((publishing.folder / "status.json").read_text())["incidents"]
    assert [u["id"] for u in shown["incident_updates"]] == [first.remote_id]


def test_concurrent_deliveries_from_two_processes_lose_no_update(home: Path, publishing: Publishing) -> None:
    other = Publishing(publishing.folder, publisher_for(home))
    results: list[Receipt | Failure] = []

    def send(side: Publishing, lang: str) -> None:
        for seq in range(1, 9):
            results.extend(side.publish(side.delivery(seq, "identified", lang)))

    threads = [threading.Thread(target=send, args=(side, lang))
               for side, lang in ((publishing, "fr"), (other, "en"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert all(isinstance(r, Receipt) for r in results) and len(results) == 16
    [incident] = publishing.state()["incidents"]
    assert len(incident["updates"]) == 8
    assert all(set(u["texts"]) == {"fr", "en"} for u in incident["updates"])


def test_every_file_is_replaced_whole_and_no_temporary_file_is_left(publishing: Publishing) -> None:
    publishing.publish(publishing.delivery(1, "investigating", "fr"))
    before = (publishing.folder / "index.html").stat().st_ino
    torn: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for name in ("index.html", "status.json", "feed.fr.atom"):
                text = (publishing.folder / name).read_text()
                end = {".html": "</html>", ".json": "}", ".atom": "</feed>"}[Path(name).suffix]
                if not text.rstrip().endswith(end):
                    torn.append(name)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for seq in range(2, 12):
            publishing.publish(*(publishing.delivery(seq, "identified", lang) for lang in ("fr", "en")))
    finally:
        stop.set()
        reader.join(timeout=10)
    assert torn == []
    assert (publishing.folder / "index.html").stat().st_ino != before
    leftovers = [p.name for p in publishing.folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
    assert oct((publishing.folder / "index.html").stat().st_mode & 0o777) == oct(0o644)


def test_the_page_keeps_the_newest_incidents_of_its_history(home: Path) -> None:
    publishing = Publishing(site(home), publisher_for(home, history=2))
    for number in range(4):
        incident = f"whatsapp-outage-20261125-14{number:02}"
        publishing.publish(publishing.delivery(1, "investigating", "fr", incident=incident))
        publishing.publish(publishing.delivery(2, "resolved", "fr", incident=incident))
    kept = [i["id"] for i in json.loads((publishing.folder / "incidents.json").read_text())["incidents"]]
    assert kept == ["whatsapp-outage-20261125-1403", "whatsapp-outage-20261125-1402"]


def test_a_drill_is_marked_on_the_page(publishing: Publishing) -> None:
    publishing.publish(publishing.delivery(1, "investigating", "en", title="[DRILL] WhatsApp is down", drill=True))
    page = (publishing.folder / "index.en.html").read_text()
    assert '<span class="pill pill-drill">Drill</span>' in page and "[DRILL] WhatsApp is down" in page


def test_a_damaged_state_file_fails_the_delivery_and_leaves_the_page_alone(publishing: Publishing) -> None:
    publishing.publish(publishing.delivery(1, "investigating", "fr"))
    page = (publishing.folder / "index.html").read_bytes()
    (publishing.folder / "state.json").write_text("{not json")
    [outcome] = publishing.publish(publishing.delivery(2, "identified", "fr"))
    assert isinstance(outcome, Failure) and not outcome.retryable
    assert outcome.reason.startswith(f"{publishing.folder / 'state.json'} is damaged (")
    assert outcome.reason.endswith("restore it from a backup, or move it away to start a new history")
    assert (publishing.folder / "index.html").read_bytes() == page


# -- phases and settings ------------------------------------------------------------------------------------

def custom_playbook(*phases: str) -> Playbook:
    return Playbook.model_validate({
        "id": "custom", "name": {"en": "Custom"}, "languages": ["en"], "window": "30m", "update_every": "1h",
        "phases": {phase: {"channels": ["website"]} for phase in phases},
    })


@pytest.mark.parametrize(("phase", "phases", "status"), [
    ("identified", ("detected", "identified", "fixed"), "identified"),
    ("monitoring", ("start", "monitoring", "end"), "monitoring"),
    ("detected", ("detected", "working", "fixed"), "investigating"),
    ("working", ("detected", "working", "fixed"), "identified"),
    ("fixed", ("detected", "working", "fixed"), "resolved"),
    ("resolved", ("resolved", "other"), "resolved"),
])
def test_a_phase_maps_to_a_statuspage_status(phase: str, phases: tuple[str, ...], status: str) -> None:
    assert status_of(phase, stage_of(custom_playbook(*phases), phase)) == status


def test_the_page_takes_zone_status_and_impact_from_the_delivery_without_reading_any_playbook(home: Path) -> None:
    publishing = Publishing(site(home), publisher_for(home))
    blocks = {"title": "Fixed", "body": "All good again."}
    delivery = Delivery(
        key="gone-20261125-1400/2-done/website/en", incident_id="gone-20261125-1400", playbook_id="gone",
        phase="done", channel="website", lang="en", message=Message("en", blocks),
        deadline=datetime.now(UTC) + timedelta(minutes=30), timezone="Asia/Tokyo",
        stage=Stage(first=False, last=True, impact="minor"),
    )
    [receipt] = publishing.publish(delivery)
    assert isinstance(receipt, Receipt)
    [incident] = publishing.state()["incidents"]
    assert incident["timezone"] == "Asia/Tokyo"
    assert [(u["status"], u["impact"]) for u in incident["updates"]] == [("resolved", "minor")]


@pytest.mark.parametrize(("output_dir", "message"), [
    ("channels.yaml", "setting 'output_dir': {home}/channels.yaml is a file, not a folder"),
    ("channels.yaml/status", "setting 'output_dir': folder {home}/channels.yaml/status cannot be written"),
])
def test_an_unusable_output_dir_is_refused_before_anything_is_sent(status_home: Path, output_dir: str,
                                                                   message: str) -> None:
    write(status_home / "channels.yaml", CHANNELS.replace("output_dir: public/status", f"output_dir: {output_dir}"))
    result = run_cli("trigger", PLAYBOOK, "--yes", home=status_home)
    assert result.code == 2
    assert result.stderr.strip() == f"error: channel 'website': {message.format(home=status_home)}"
    assert not (status_home / "outbox").exists()


def test_check_writes_and_renames_a_probe_then_removes_it(home: Path) -> None:
    publisher = publisher_for(home, output_dir="public/new/status")
    assert publisher.validate() == []
    result = asyncio.run(publisher.check())
    assert result.ok and result.detail == f"writable: {home}/public/new/status, served at {URL}/"
    assert list((home / "public" / "new" / "status").iterdir()) == []


def test_unknown_settings_are_refused_with_the_channel_and_setting(status_home: Path) -> None:
    write(status_home / "channels.yaml", CHANNELS.replace("url: https://status", "adress: x\n    url: https://status"))
    result = run_cli("validate", home=status_home)
    assert result.code == 2
    assert "channel 'website' has an unknown setting 'adress'" in result.output


def test_the_folder_holds_the_site_files_every_language_needs(publishing: Publishing) -> None:
    publishing.publish(publishing.delivery(1, "investigating", "fr"), publishing.delivery(1, "investigating", "en"))
    assert sorted(p.name for p in publishing.folder.iterdir()) == [
        "banner.js", "banner.json", "feed.en.atom", "feed.fr.atom", "incidents.en.json", "incidents.fr.json",
        "incidents.json", "index.en.html", "index.fr.html", "index.html", "state.json", "status.en.json",
        "status.fr.json", "status.json",
    ]
    assert os.access(publishing.folder / "banner.js", os.R_OK)


def test_the_page_dates_the_incident_from_its_detection_as_the_messages_do(status_home: Path) -> None:
    detected = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
    session = Session(Home(root=status_home))
    try:
        outcome = trigger(session, PLAYBOOK, {}, detected)
    finally:
        session.close()
    assert outcome.result is not None and outcome.result.ok, outcome.result
    stamp = detected.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for name in ("status.json", "incidents.json"):
        [shown] = json.loads((site(status_home) / name).read_text())["incidents"]
        assert shown["started_at"] == shown["created_at"] == stamp
    page = (site(status_home) / "index.en.html").read_text()
    assert f'<time datetime="{stamp}">' in page


# -- how bad it is: impact, components, the next update ----------------------------------------------------

IMPACT_CHANNELS = CHANNELS.replace("    url: https://status.example.com\n", """\
    url: https://status.example.com
    components:
      WhatsApp messages: {investigating: major_outage, identified: major_outage, monitoring: degraded_performance}
      Email support: {investigating: degraded_performance}
      Web chat: {}
""")


@pytest.fixture
def impact_home(home: Path) -> Path:
    """The status page home, its phases rated critical, major, minor and none, with three components."""
    write(home / "channels.yaml", IMPACT_CHANNELS)
    path = home / "playbooks" / f"{PLAYBOOK}.yaml"
    text = path.read_text(encoding="utf-8")
    for phase, impact in (("investigating", "critical"), ("identified", "major"), ("monitoring", "minor"),
                          ("resolved", "none")):
        text = re.sub(rf"^(  {phase}: +\{{channels: \[[^\]]*\]), impact: \w+\}}", rf"\1, impact: {impact}}}", text,
                      flags=re.M)
    write(path, text)
    assert text.count("impact: critical") == 1 and text.count("impact: none") == 1
    return home


def components_of(dom: str) -> dict[str, str]:
    found = re.findall(r'<li class="component component-(\w+)"><span class="component-name">([^<]+)</span>\s*'
                       r'<span class="component-status">([^<]+)</span>', dom)
    return {name: f"{status}: {label}" for status, name, label in found}


def test_the_page_says_how_bad_which_services_and_when_the_next_update_comes(impact_home: Path) -> None:
    from zoneinfo import ZoneInfo

    public = impact_home / "public"
    outcome = start(impact_home)
    incident, promised = outcome.plan.incident_id, outcome.plan.context.next_update_at
    assert promised is not None
    local = promised.astimezone(ZoneInfo("Europe/Paris"))
    host = host_page(public, "en")
    with serve_folder(public) as base:
        french = dump_dom(f"{base}/status/")
        english = dump_dom(f"{base}/status/index.en.html")
        banner = dump_dom(f"{base}/{host}")

    assert 'class="summary summary-critical"' in english
    assert "Major System Outage" in visible_text(english) and "Panne majeure" in visible_text(french)
    assert components_of(english) == {"WhatsApp messages": "major_outage: Major outage",
                                      "Email support": "degraded_performance: Degraded performance",
                                      "Web chat": "operational: Operational"}
    assert components_of(french)["WhatsApp messages"] == "major_outage: Panne majeure"
    tz = local.tzname()
    assert f"Next update by {local:%-I:%M}\u202f{local:%p} {tz}" in visible_text(english)
    assert f"Prochaine mise à jour d’ici {local:%H:%M} {tz}" in visible_text(french)
    assert 'data-impact="critical"' in banner and "background: rgb(255, 235, 233)" in banner
    assert f"(Next update by {local:%-I:%M}\u202f{local:%p} {tz})" in visible_text(banner)

    summary = json.loads((site(impact_home) / "status.en.json").read_text())
    assert summary["status"] == {"indicator": "critical", "description": "Major System Outage"}
    assert [(c["name"], c["status"]) for c in summary["components"]] == [
        ("WhatsApp messages", "major_outage"), ("Email support", "degraded_performance"),
        ("Web chat", "operational")]
    shown = summary["incidents"][0]
    assert (shown["id"], shown["impact"]) == (incident, "critical")
    # The ledger keeps milliseconds.
    assert abs(datetime.fromisoformat(shown["next_update_at"].replace("Z", "+00:00")) - promised) < timedelta(
        milliseconds=1)

    follow(impact_home, incident, "monitoring")
    summary = json.loads((site(impact_home) / "status.json").read_text())
    assert (summary["status"]["indicator"], summary["incidents"][0]["impact"]) == ("minor", "minor")
    assert {c["name"]: c["status"] for c in summary["components"]} == {
        "WhatsApp messages": "degraded_performance", "Email support": "operational", "Web chat": "operational"}

    follow(impact_home, incident, None)
    page = (site(impact_home) / "index.en.html").read_text()
    summary = json.loads((site(impact_home) / "status.json").read_text())
    assert summary["status"]["indicator"] == "none" and summary["incidents"] == []
    assert {c["status"] for c in summary["components"]} == {"operational"}
    assert "Next update by" not in page and 'class="summary summary-none"' in page


def test_without_an_impact_an_open_incident_is_major_as_before(status_home: Path) -> None:
    start(status_home)
    summary = json.loads((site(status_home) / "status.json").read_text())
    assert (summary["status"]["indicator"], summary["incidents"][0]["impact"]) == ("major", "major")
    assert summary["components"] == []


def test_a_status_pages_link_is_its_page_url_in_results_and_the_timeline(status_home: Path) -> None:
    result = run_cli("trigger", PLAYBOOK, "--yes", "--json", home=status_home)
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    incident = data["incident"]
    links = {d["lang"]: d["url"] for d in data["deliveries"] if d["channel"] == "website"}
    assert links == {"fr": f"{URL}/#{incident}", "en": f"{URL}/index.en.html#{incident}"}
    md = run_cli("timeline", incident, home=status_home).stdout
    assert "| website | en | sent | " in md and f"| <{URL}/index.en.html#{incident}> |" in md
    opaque = {d["remote_id"] for d in data["deliveries"] if d["channel"] == "website"}
    assert not any(f"| {remote_id} |" in md for remote_id in opaque)
