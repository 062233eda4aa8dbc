"""Text from outside is inert where it goes: no terminal escapes obeyed, no character XML refuses, no odd links."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml

from playbook.channels.briefing import links_of
from playbook.ledger.statuses import DeliveryStatus
from playbook.publishers.base import Delivery, Link, Receipt
from playbook.textsafe import text_only, web_link
from tests.conftest import run_cli, run_main, write
from tests.fakes.http import Reply, WebhookSink, use_webhooks
from tests.fakes.smtp import SmtpServer

PLAYBOOK = "whatsapp-outage"
# Retitles the terminal, then clears it; 0x9b is the one-byte form of ESC [ some terminals obey.
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b2J"


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    # Wide enough that a warning is one line on screen too.
    monkeypatch.setenv("COLUMNS", "400")


@pytest.mark.parametrize(("value", "expected"), [
    ("https://x.example/status/1", "https://x.example/status/1"),
    ("HTTP://X.EXAMPLE/a?b=c#d", "HTTP://X.EXAMPLE/a?b=c#d"),
    ("javascript:alert(1)", None),
    ("JavaScript:alert(1)", None),
    ("data:text/html,<script>alert(1)</script>", None),
    ("vbscript:msgbox", None),
    ("//x.example/a", None),
    ("https://", None),
    (" https://x.example/", None),
    ("https://x.example/\x1b[2J", None),
    ("https://x.example/a b", None),
    ("https://[::1/", None),
    ("", None),
    (None, None),
])
def test_only_a_web_address_is_a_link(value: str | None, expected: str | None) -> None:
    assert web_link(value) == expected


def test_a_receipt_keeps_a_web_link_and_drops_any_other() -> None:
    assert Receipt("1", "https://x.example/1").url == "https://x.example/1"
    assert Receipt("1", "javascript:alert(1)") == Receipt("1", None)


def test_a_briefing_links_only_to_web_addresses() -> None:
    links = (Link("x", "en", DeliveryStatus.SENT, "javascript:alert(1)"),
             Link("x", "fr", DeliveryStatus.SENT, "https://x.example/2"))
    delivery = cast(Delivery, SimpleNamespace(links=links))
    (channel,) = links_of(delivery)
    assert [(p.lang, p.url) for p in channel.posts] == [("en", None), ("fr", "https://x.example/2")]


def test_text_only_drops_what_xml_refuses_and_keeps_the_rest() -> None:
    kept = "\th\ni\rj\x7fk\x85l 🙂"
    assert text_only("a\x00b\x0bc\x1bd\ud800e\ufffef\uffffg" + kept) == "abcdefg" + kept


def test_a_javascript_link_from_a_provider_is_never_recorded_shown_or_linked(home: Path,
                                                                           webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"], languages=["en"])
    webhook_sink.script("ops", Reply(body={"id": "m-1", "url": "javascript:alert(document.cookie)"}))
    sent = run_cli("trigger", PLAYBOOK, "--yes", "--json", home=home)
    assert sent.code == 0, sent.output
    data = json.loads(sent.stdout)
    (delivery,) = data["deliveries"]
    assert (delivery["remote_id"], delivery["url"]) == ("m-1", None)
    for args in (("timeline", data["incident"]), ("timeline", data["incident"], "--format", "json"),
                 ("status", data["incident"])):
        shown = run_cli(*args, home=home)
        assert shown.code == 0, shown.output
        assert "javascript" not in shown.stdout, shown.stdout
    timeline = run_cli("timeline", data["incident"], home=home).stdout
    assert "| ops | en | sent |" in timeline and "| m-1 |" in timeline


def email_home(home: Path, server: SmtpServer, rows: str) -> None:
    """The starter's `customers` channel as email to a list holding `rows`."""
    channels = yaml.safe_load((home / "channels.yaml").read_text(encoding="utf-8"))
    channels["channels"]["customers"] = {
        "type": "email", "host": server.host, "port": server.port, "security": "none",
        "from": "Support <support@example.com>", "recipients": "contacts/customers.csv",
    }
    write(home / "channels.yaml", yaml.safe_dump(channels, allow_unicode=True, sort_keys=False))
    write(home / "contacts" / "customers.csv", "email,language,name\n" + rows)


def test_escape_sequences_in_a_csv_cell_are_shown_never_obeyed(home: Path) -> None:
    with SmtpServer(login=None) as server:
        email_home(home, server, f"ana@example.com,en,Ana{ESCAPES}\nbad{ESCAPES}@,en,Bob\n")
        checked = run_main("--home", str(home), "validate")
        dry = run_main("--home", str(home), "trigger", PLAYBOOK, "--dry-run")
        assert server.connections == 0
    assert checked.code == 0, checked
    shown = "\\x1b]0;pwned\\x07\\x1b[2J\\x9b2J"
    assert (f"warning: channel 'customers': contacts/customers.csv:3: 'bad{shown}@' is not an email address"
            in checked.stdout), checked.stdout
    assert dry.code == 0, dry
    # Rendered into a message, C0 controls are dropped (no output format carries them); C1 ones are shown.
    assert "Ana]0;pwned[2J\\x9b2J" in dry.stdout, dry.stdout
    for said in (checked, dry):
        assert not any(c in said.stdout + said.stderr for c in "\x1b\x07\x9b")


def test_escape_sequences_in_a_playbook_are_shown_in_show_faq_and_checklist(home: Path) -> None:
    playbook_file = home / "playbooks" / f"{PLAYBOOK}.yaml"
    document: dict[str, Any] = yaml.safe_load(playbook_file.read_text(encoding="utf-8"))
    document["name"] = {lang: name + ESCAPES for lang, name in document["name"].items()}
    document["faq"][0]["question"]["en"] += ESCAPES
    phase = next(iter(document["checklist"]))
    document["checklist"][phase]["en"][0] += ESCAPES
    write(playbook_file, yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    for args in (("show", PLAYBOOK), ("list",), ("faq", PLAYBOOK, "--lang", "en"),
                 ("checklist", PLAYBOOK, "--lang", "en")):
        said = run_main("--home", str(home), *args)
        assert said.code == 0, said
        assert "\\x1b]0;pwned\\x07" in said.stdout, (args, said.stdout)
        assert not any(c in said.stdout for c in "\x1b\x07\x9b"), args


def test_an_email_carries_no_control_character_from_a_csv_cell(home: Path) -> None:
    with SmtpServer(login=None) as server:
        email_home(home, server, f"ana@example.com,en,Ana{ESCAPES}\n")
        sent = run_cli("trigger", PLAYBOOK, "--yes", home=home)
        assert sent.code == 0, sent.output
        (mail,) = server.messages
    assert mail.message["To"].addresses[0].display_name == "Ana]0;pwned[2J\x9b2J"
    for text in (mail.part("plain"), mail.part("html"), str(mail.message["To"])):
        assert "Ana]0;pwned[2J" in text and not any(c in text for c in "\x00\x1b\x07"), text
