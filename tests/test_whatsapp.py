"""The backup WhatsApp number: template messages to urgent contacts, through the real engine, to a fake Cloud API."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from playbook.channels.whatsapp import about_text, template_text
from tests.conftest import deliveries, ledger_text, run_cli, run_trigger, write
from tests.fakes.provider import add_channel
from tests.fakes.whatsapp_api import FakeWhatsApp, account_limited, throughput_limited, token_expired, unavailable

TOKEN = "EAAGm0PX4ZCpsBAKq3Vb9LmZ4xRt1Nw8Ys3Pd6Hq2Wz7"
PHONE_ID = "106540352242922"
CONTACTS = """phone,language,name
+33 6 12 34 56 78,fr,Camille Martin
+44 7700 900123,en,Alex Smith
0033 6 98 76 54 32,,Dominique Roux
not a number,fr,Broken Row
"""
TOKEN_REFUSED = ("WhatsApp refused the access token (error 190/463): it expired or was revoked; create a System User "
                 "token with whatsapp_business_messaging in Meta Business Settings and put it in setting "
                 "'access_token' of channel 'urgent'")


@pytest.fixture
def whatsapp() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp(TOKEN, PHONE_ID, {"outage_notice": ["fr", "en_US"]}) as fake:
        yield fake


def use_whatsapp(home: Path, api_base: str, contacts: str = CONTACTS, **settings: Any) -> None:
    """Add channel `urgent` (the token from .env, contacts/urgent.csv) to every phase of the starter home."""
    write(home / "contacts" / "urgent.csv", contacts)
    add_channel(home, "urgent", {
        "type": "whatsapp", "phone_number_id": PHONE_ID, "access_token": "${WHATSAPP_TOKEN}",
        "template": "outage_notice", "template_language": {"en": "en_US"}, "recipients": "contacts/urgent.csv",
        "api_base": api_base, **settings}, env={"WHATSAPP_TOKEN": TOKEN})


def urgent(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return deliveries(data, "urgent")


def notes(home: Path) -> list[str]:
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        rows = db.execute("SELECT note FROM deliveries WHERE channel = 'urgent' AND note IS NOT NULL")
        return [row[0] for row in rows]


def test_each_contact_gets_the_template_in_their_language(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base)
    result, data = run_trigger(home)
    assert result.code == 0, result.output
    rows = urgent(data)
    assert rows["fr"]["recipients"] == {"total": 2, "sent": 2, "already-sent": 0, "failed": 0, "rejected": 0}
    assert rows["en"]["recipients"] == {"total": 1, "sent": 1, "already-sent": 0, "failed": 0, "rejected": 0}
    sent = {s.to: s for s in whatsapp.sent}
    assert {to: s.language for to, s in sent.items()} == {"+33612345678": "fr", "+447700900123": "en_US",
                                                         "+33698765432": "fr"}
    assert {s.template for s in whatsapp.sent} == {"outage_notice"}
    french = sent["+33612345678"].text
    assert french.startswith("Notre WhatsApp est perturbé") and "\n" not in french
    assert "Toutes nos excuses. Contact\xa0: support@example.com ou https://example.com/chat — Suivi" in french
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in whatsapp.received)
    assert whatsapp.about == []


def test_update_about_sets_the_profile_once_per_post_cut_at_a_sentence(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base, update_about=True, connections=1)
    _, first = run_trigger(home)
    update = run_cli("update", first["incident"], "--phase", "identified", "--yes", "--json", home=home)
    assert update.code == 0, update.output
    assert len(whatsapp.about) == 2 and len(whatsapp.requests(whatsapp.profile_path)) == 2
    texts = {s.text for s in whatsapp.sent}
    for about in whatsapp.about:
        assert len(about) <= 139 and about.endswith((".", "…"))
        assert any(about_text(text) == about for text in texts), about
    # One connection: the list's first contact, who reads French, makes the post's first delivery.
    assert whatsapp.about[0] == ("Notre WhatsApp est perturbé\xa0: vos messages peuvent nous arriver en retard, ou pas "
                                 "du tout. Nous enquêtons. Toutes nos excuses.")
    assert sorted(n.partition(":")[0] for n in notes(home)) == ["profile about set"] * 2


def test_throughput_limit_is_retried_until_whatsapp_accepts(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base)
    whatsapp.script(whatsapp.messages_path, throughput_limited())
    result, data = run_trigger(home)
    assert result.code == 0, result.output
    assert sum(d["recipients"]["sent"] for d in urgent(data).values()) == 3
    assert len(whatsapp.requests(whatsapp.messages_path)) == 4 and len(whatsapp.sent) == 3


def test_account_limit_beyond_the_window_fails_at_once_naming_when(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base, connections=1, retry_for="10s")
    whatsapp.script(whatsapp.messages_path, account_limited(minutes=5))
    started = datetime.now(UTC)
    result, data = run_trigger(home, "--detected-at", "-40m")
    assert result.code == 1, result.output
    failed = urgent(data)["fr"]
    assert failed["recipients"]["failed"] == 1 and failed["recipients"]["sent"] == 1
    prefix = ("WhatsApp rate limit (error 80007): (#80007) There have been too many calls to this WhatsApp Business "
              "account.; the provider accepts again at ")
    assert failed["error"].startswith(prefix)
    when = datetime.strptime(failed["error"][len(prefix):len(prefix) + 8], "%H:%M:%S").time()
    expected = started + timedelta(minutes=5)
    assert abs((datetime.combine(expected.date(), when, UTC) - expected).total_seconds()) < 30
    assert len(whatsapp.sent) == 2


def test_outage_of_the_api_is_retried_until_whatsapp_accepts(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base)
    whatsapp.script(whatsapp.messages_path, unavailable())
    result, data = run_trigger(home)
    assert result.code == 0, result.output
    assert sum(d["recipients"]["sent"] for d in urgent(data).values()) == 3 and len(whatsapp.sent) == 3


def test_expired_token_fails_fast_saying_what_to_do_while_other_channels_deliver(
        home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base, connections=1)
    whatsapp.script(whatsapp.messages_path, token_expired())
    started = time.monotonic()
    result, data = run_trigger(home)
    assert result.code == 1, result.output
    assert time.monotonic() - started < 15
    rows = urgent(data)
    assert rows["fr"]["error"] == rows["en"]["error"] == TOKEN_REFUSED
    assert sum(d["recipients"]["failed"] for d in rows.values()) == 3
    # The first refusal stands for the rest: one request, not one per contact.
    assert len(whatsapp.requests(whatsapp.messages_path)) == 1 and whatsapp.sent == []
    others = [d for d in data["deliveries"] if d["channel"] != "urgent"]
    assert len(others) == 6 and all(d["status"] == "sent" for d in others)


def test_a_contact_not_on_whatsapp_is_rejected_and_the_others_still_get_it(home: Path) -> None:
    with FakeWhatsApp(TOKEN, PHONE_ID, {"outage_notice": ["fr", "en_US"]},
                      not_on_whatsapp=["+33698765432"]) as whatsapp:
        use_whatsapp(home, whatsapp.api_base)
        result, data = run_trigger(home)
    assert result.code == 0, result.output
    french = urgent(data)["fr"]
    assert (french["status"], french["recipients"]["sent"], french["recipients"]["rejected"]) == ("sent", 1, 1)
    assert french["error"] == ("WhatsApp refused this contact (error 131026): this number cannot receive WhatsApp "
                               "messages (not on WhatsApp, or an old app)")
    assert sorted(s.to for s in whatsapp.sent) == ["+33612345678", "+447700900123"]


def test_a_language_without_the_template_is_named_and_the_others_go_out(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base, template_language={})
    result, data = run_trigger(home)
    assert result.code == 1, result.output
    rows = urgent(data)
    assert rows["fr"]["recipients"]["sent"] == 2
    assert rows["en"]["error"] == ("template 'outage_notice' does not exist in language 'en' or is not approved "
                                   "(error 132001): check settings 'template' and 'template_language' of channel "
                                   "'urgent' against WhatsApp Manager")


def test_short_block_over_the_template_limit_stops_everything(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base)
    template = home / "templates" / "whatsapp-outage" / "investigating.fr.j2"
    text = template.read_text(encoding="utf-8")
    write(template, re.sub(r"(\{% block short %\}).*?(\{% endblock %\})", r"\1" + "Désolés.\n" * 120 + r"\2", text,
                           count=1, flags=re.DOTALL))
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home)
    assert result.code == 2, result.output
    assert ("block 'short' is too long for channel 'urgent': 1079/1024 characters; nothing was sent"
            in result.stderr)
    assert whatsapp.received == []
    assert template_text("Désolés.\n" * 120) == " ".join(["Désolés."] * 120)


def test_a_list_without_a_phone_column_stops_everything(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base, contacts="number,language\n+33612345678,fr\n")
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home)
    assert result.code == 2, result.output
    assert "channel 'urgent': contacts/urgent.csv:1: no 'phone' column (columns: number, language)" in result.stderr
    assert whatsapp.received == []


def test_check_describes_the_sending_number_and_what_it_did_not_verify(home: Path,
                                                                       whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base)
    result = run_cli("channels", "--check", "--json", home=home)
    assert result.code == 0, result.output
    channel = {c["name"]: c for c in json.loads(result.stdout)["channels"]}["urgent"]
    assert channel["check"] == {"ok": True, "detail": (
        "sends from +33 6 12 34 56 78 (Example Support); not verified: template 'outage_notice' and its languages "
        "(WhatsApp Manager lists them)")}
    assert channel["recipients"] == 4
    [request] = whatsapp.received
    assert (request.method, request.path, request.query) == (
        "GET", f"/v21.0/{PHONE_ID}", {"fields": "display_phone_number,verified_name"})


def test_validate_points_out_contacts_that_will_be_skipped(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base)
    result = run_cli("validate", home=home)
    assert ("channel 'urgent': contacts/urgent.csv:5: 'not a number' is not an international phone number (write "
            "it with + and the country code, e.g. +33612345678); this row is skipped") in result.output


def test_token_never_appears_in_output_or_ledger(home: Path, whatsapp: FakeWhatsApp) -> None:
    use_whatsapp(home, whatsapp.api_base, update_about=True)
    results = [run_cli("channels", "--check", home=home), run_cli("channels", "--json", home=home)]
    first, data = run_trigger(home)
    results.append(first)
    whatsapp.script(whatsapp.messages_path, *[token_expired()] * 3)
    whatsapp.script(whatsapp.profile_path, token_expired())
    results.append(run_cli("--debug", "update", data["incident"], "--phase", "identified", "--yes", home=home))
    results.append(run_cli("status", "--json", home=home))
    assert first.code == 0 and results[-2].code == 1, results[-2].output
    seen = "\n".join(r.output for r in results) + ledger_text(home)
    assert TOKEN not in seen
