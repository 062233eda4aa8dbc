"""The SMS channel through Twilio's own client and the real engine, against a fake Twilio API on 127.0.0.1."""

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

from playbook.channels.sms import prepare
from playbook.publishers.recipients import phone_number
from tests.conftest import Result, channel_check, deliveries, ledger_text, run_cli, run_trigger, set_short, write
from tests.fakes.twilio_api import Answer, FakeTwilio

ACCOUNT_SID = "AC5f0c1b7e9a2d4c6e8f0a1b3c5d7e9f01"
AUTH_TOKEN = "tok-3b9d1f7a5c2e8b4d6f0a9c1e"
SERVICE_SID = "MG0a1b2c3d4e5f60718293a4b5c6d7e8f9"
ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
SENDER = "+33700000001"
CREDENTIALS_REFUSED = ("Twilio refused the credentials (HTTP 401, error 20003: Authenticate): copy the Account SID "
                       "and Auth Token from the Twilio console (Account Info) into the variables that 'account_sid' "
                       "and 'auth_token' of channel 'sms' name")
PEOPLE = (
    "phone,language,name\n"
    "+33 6 12 34 56 78,fr,Camille\n"
    "+447700900123,en,Jordan\n"
    "+33 (0)6 98 76 54 32,fr,Léa\n"
    "0044 7700 900456,en-GB,Alex\n"
    "06 12,fr,Typo\n"
    "+33612345678,fr,Camille again\n"
)
NUMBERS = {"+33612345678": "fr", "+447700900123": "en", "+33698765432": "fr", "+447700900456": "en"}


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, numbers=(SENDER,), services={SERVICE_SID: "Crisis texts"}) as fake:
        yield fake


def use_sms(home: Path, api_base: str, *, extra: str = "", people: str = PEOPLE, sender: str = SENDER) -> None:
    """Add channel `sms` (a Twilio account at `api_base`, texting contacts/sms.csv) to the first phase."""
    channels = home / "channels.yaml"
    channels.write_text(channels.read_text(encoding="utf-8") + (
        "  sms:\n"
        "    type: sms\n"
        "    account_sid: ${TWILIO_ACCOUNT_SID}\n"
        "    auth_token: ${TWILIO_AUTH_TOKEN}\n"
        f"    from: \"{sender}\"\n"
        "    recipients: contacts/sms.csv\n"
        f"    api_base: {api_base}\n"
        f"{extra}"
    ), encoding="utf-8")
    write(home / "contacts" / "sms.csv", people)
    playbook = home / "playbooks" / "whatsapp-outage.yaml"
    text, count = re.subn(r"investigating: \{channels: \[([^\]]*)\]", r"investigating: {channels: [\1, sms]",
                          playbook.read_text(encoding="utf-8"))
    assert count == 1
    playbook.write_text(text, encoding="utf-8")


def trigger(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Result, dict[str, Any]]:
    return run_trigger(home, *args, env=env or ENV)


def sms_rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return deliveries(data, "sms")


def test_each_person_gets_one_text_in_their_language(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url)
    set_short(home, "fr", "{% if recipient is defined %}{{ recipient.name }}, n{% else %}N{% endif %}otre WhatsApp "
                          "est perturbé. Écrivez à {{ support_email }}.")
    set_short(home, "en", "{% if recipient is defined %}{{ recipient.name }}, o{% else %}O{% endif %}ur WhatsApp "
                          "is down. Email {{ support_email }}.")
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert twilio.texts() == {
        "+33612345678": ["Camille, notre WhatsApp est perturbé. Écrivez à support@example.com."],
        "+447700900123": ["Jordan, our WhatsApp is down. Email support@example.com."],
        "+33698765432": ["Léa, notre WhatsApp est perturbé. Écrivez à support@example.com."],
        "+447700900456": ["Alex, our WhatsApp is down. Email support@example.com."],
    }
    assert {p.form["From"] for p in twilio.posts()} == {SENDER}
    rows = sms_rows(data)
    assert rows["fr"]["status"] == rows["en"]["status"] == "sent"
    assert rows["fr"]["recipients"]["sent"] == rows["en"]["recipients"]["sent"] == 2
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        ledger = {row[0]: row[1:] for row in db.execute(
            "SELECT recipient, lang, status, remote_id FROM deliveries WHERE channel = 'sms'")}
    assert {number: (lang, status) for number, (lang, status, _) in ledger.items()} == {
        number: (lang, "sent") for number, lang in NUMBERS.items()}
    assert {remote_id for _, _, remote_id in ledger.values()} == {m["sid"] for m in twilio.messages}


def test_a_messaging_service_sends_in_place_of_a_number(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, sender=SERVICE_SID)
    result, _ = trigger(home)
    assert result.code == 0, result.output
    assert len(twilio.messages) == 4
    assert all(p.form["MessagingServiceSid"] == SERVICE_SID and "From" not in p.form for p in twilio.posts())


@pytest.mark.parametrize(("written", "sent", "simplified"), [
    ("Plain text stays as it is.", "Plain text stays as it is.", ""),
    ("Réglé à 14 h, où ça ?", "Réglé à 14 h, où ca ?", "ç→c"),  # é, à, ù are GSM-7; ç is not (only Ç)
    ("We’re sorry… it’s back – soon", "We're sorry... it's back - soon", ""),
    ("« Urgent » : appelez-nous\u202f!", '"Urgent" : appelez-nous !', ""),
    ("Prix\u00a0: 10\u00a0€ — cœur", "Prix : 10 € - coeur", ""),
    ("Nous enquêtons, la fenêtre", "Nous enquetons, la fenetre", "ê→e"),
    ("Être là, naïf, ÂGE, Çà", "Etre là, naif, AGE, Çà", "Ê→E, ï→i, Â→A"),
    ("Nous enquêtons 🙂", "Nous enquêtons 🙂", ""),  # an emoji needs UCS-2 anyway: the accents stay
    ("Ошибка сети", "Ошибка сети", ""),
])
def test_text_is_made_gsm7_when_typography_or_accents_are_all_that_stand_in_the_way(
        written: str, sent: str, simplified: str) -> None:
    assert prepare(written) == prepare(written, "gsm7")
    assert (prepare(written).text, prepare(written).simplified) == (sent, simplified)
    assert prepare(written, "none").text == written


@pytest.mark.parametrize(("written", "number"), [
    ("+33612345678", "+33612345678"),
    ("+33 6 12 34 56 78", "+33612345678"),
    ("+33 (0)6 12 34 56 78", "+33612345678"),
    ("0033 6.12.34.56.78", "+33612345678"),
    ("+1 (415) 555-0100", "+14155550100"),
])
def test_phone_numbers_are_read_in_their_usual_international_forms(written: str, number: str) -> None:
    assert phone_number(written) == number


@pytest.mark.parametrize("written", ["06 12 34 56 78", "+0612345678", "+33 6 12", "+33 6 12 34 56 78 90 12 34 5",
                                     "call me", ""])
def test_numbers_without_a_country_code_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match=r"^(write it with \+ and the country code, e\.g\. \+33612345678|no number)$"):
        phone_number(written)


def test_gsm7_normalisation_is_what_goes_out_and_what_is_measured(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, extra="    cost_per_segment: 0.07\n")
    short = ("Notre WhatsApp est perturbé : nous enquêtons. Écrivez-nous à {{ support_email }} "
             "ou appelez le {{ support_phone }} – réponse rapide. « Merci » de votre patience…")
    set_short(home, "fr", short)
    result, _ = trigger(home)
    assert result.code == 0, result.output
    expected = ("Notre WhatsApp est perturbé : nous enquetons. Écrivez-nous à support@example.com "
                'ou appelez le +33 1 23 45 67 89 - réponse rapide. "Merci" de votre patience...')
    assert twilio.texts()["+33612345678"] == [expected]
    assert len(expected) == 159
    assert {m["num_segments"] for m in twilio.messages if m["to"] == "+33612345678"} == {"1"}
    rendered = run_cli("render", "whatsapp-outage", "--lang", "fr", "--channel", "sms", home=home, env=ENV)
    assert rendered.code == 0, rendered.output
    assert ("short → sms (1/3 segments, GSM-7, 159 units, accents simplified: ê→e, ≈ 0.07 EUR each, "
            "≈ 0.28 EUR for 4 recipients)") in rendered.stdout


def test_normalise_none_sends_accents_as_written_and_says_what_gsm7_would_save(home: Path,
                                                                                twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, extra="    normalise: none\n    cost_per_segment: 0.07\n")
    set_short(home, "fr", "Nous enquêtons : le service reprend bientôt. " * 2)
    set_short(home, "en", "We are looking into it.")
    result, _ = trigger(home)
    assert result.code == 0, result.output
    assert twilio.texts()["+33612345678"] == [("Nous enquêtons : le service reprend bientôt. " * 2).strip()]
    assert {p.form.get("SmartEncoded") for p in twilio.posts()} == {"false"}
    assert {m["num_segments"] for m in twilio.messages if m["to"] == "+33612345678"} == {"2"}
    rendered = run_cli("render", "whatsapp-outage", "--lang", "fr", "--channel", "sms", home=home, env=ENV)
    assert ("short → sms (2/3 segments, UCS-2, 89 units, 'ê' is not in GSM-7, normalise: gsm7 would send 1 segment(s), "
            "≈ 0.14 EUR each, ≈ 0.56 EUR for 4 recipients)") in rendered.stdout


def test_validate_shows_segments_and_the_cost_of_the_whole_list(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, extra="    cost_per_segment: 0.0725\n    currency: USD\n")
    set_short(home, "en", "Our WhatsApp is down: email {{ support_email }} or call {{ support_phone }}. " * 3)
    result = run_cli("validate", home=home, env=ENV)
    assert result.code == 0, result.output
    table = " ".join(result.stdout.split())
    assert re.search(r"investigating .*en sms short 2/3 segments, GSM-7, 224 units, ≈ 0.145 USD each, "
                     r"≈ 0.58 USD for 4 recipients", table), result.stdout
    assert ("warning: channel 'sms': contacts/sms.csv:6: '06 12' is not an international phone number "
            "(write it with + and the country code, e.g. +33612345678); this row is skipped") in " ".join(
        result.stdout.split())
    assert "contacts/sms.csv:7: +33612345678 repeats line 2; it is sent once" in result.stdout
    assert twilio.requests() == []


def test_text_over_max_segments_stops_everything_before_anything_is_sent(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, extra="    max_segments: 2\n")
    set_short(home, "en", "Our WhatsApp is down, sorry. " * 11)
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert ("block 'short' is too long for channel 'sms': 3/2 segments, GSM-7, 318 units; nothing was sent"
            in result.stderr)
    assert twilio.requests() == []
    assert not (home / "outbox").exists()


def test_rate_spaces_the_texts_evenly(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, extra="    rate: 2\n")
    before = datetime.now(UTC)
    result, _ = trigger(home)
    assert result.code == 0, result.output
    assert len(twilio.posts()) == 4
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        starts = sorted(datetime.fromisoformat(row[0]) for row in db.execute(
            "SELECT started_at FROM deliveries WHERE channel = 'sms'"))
    # Each start waits for its slot, 1/rate after the one before: whatever the machine's load, the fourth text
    # cannot start sooner than 1.5 s after the command began (arrivals at the server could bunch up).
    assert len(starts) == 4
    assert starts[-1] - before >= timedelta(seconds=1.5), [s - before for s in starts]


def test_rate_limit_and_server_errors_are_retried_until_twilio_accepts(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, extra="    connections: 1\n")
    twilio.queue(Answer.rate_limited(), Answer.server_error(503))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert len(twilio.posts()) == 6 and len(twilio.messages) == 4
    assert sorted(twilio.texts()) == sorted(NUMBERS)
    rows = sms_rows(data)
    assert rows["fr"]["recipients"]["sent"] + rows["en"]["recipients"]["sent"] == 4
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        attempts = sorted(row[0] for row in db.execute("SELECT attempts FROM deliveries WHERE channel = 'sms'"))
    assert attempts == [1, 1, 1, 3]


def test_refused_credentials_fail_fast_naming_what_to_fix_while_other_channels_deliver(
        home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, extra="    connections: 1\n")
    started = time.monotonic()
    result, data = trigger(home, env={**ENV, "TWILIO_AUTH_TOKEN": "tok-revoked-0a9b8c7d6e5f"})
    assert result.code == 1, result.output
    assert time.monotonic() - started < 15
    assert len(twilio.posts()) == 1 and twilio.messages == []
    for row in sms_rows(data).values():
        assert row["status"] == "failed" and row["error"] == CREDENTIALS_REFUSED
        assert row["recipients"]["failed"] == 2
    others = [d for d in data["deliveries"] if d["channel"] != "sms"]
    assert len(others) == 6 and all(d["status"] == "sent" for d in others)


def test_invalid_and_unsubscribed_numbers_are_rejected_once_and_the_rest_sent(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url)
    twilio.refuse("+447700900123", Answer.invalid_number("+447700900123"))
    twilio.refuse("+33698765432", Answer.unsubscribed())
    result, data = trigger(home)
    assert result.code == 0, result.output
    rows = sms_rows(data)
    assert rows["fr"]["recipients"]["rejected"] == rows["en"]["recipients"]["rejected"] == 1
    assert rows["fr"]["error"] == ("Twilio refused the number: the recipient has unsubscribed (they replied STOP) "
                                   "(HTTP 400, error 21610: Attempt to send to unsubscribed recipient)")
    assert sorted(twilio.texts()) == ["+33612345678", "+447700900456"]
    assert sorted(p.form["To"] for p in twilio.posts()) == sorted(NUMBERS)
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        statuses = dict(db.execute("SELECT recipient, status FROM deliveries WHERE channel = 'sms'").fetchall())
    assert statuses == {"+33612345678": "sent", "+447700900123": "rejected", "+33698765432": "rejected",
                        "+447700900456": "sent"}


def test_text_whose_answer_was_lost_is_sent_again_as_documented(home: Path, twilio: FakeTwilio) -> None:
    # A 3 s attempt that the other texts' answers meet even on a loaded machine; the lost answer comes far later.
    use_sms(home, twilio.url, extra="    timeout: 3s\n    connections: 1\n")
    twilio.queue(Answer.slow(10))
    result, _ = trigger(home)
    assert result.code == 0, result.output
    first = twilio.posts()[0].form["To"]
    assert len(twilio.texts()[first]) == 2
    assert len(twilio.messages) == 5


def test_check_fetches_the_account_and_the_sender_number(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url)
    result, sms = channel_check(home, "sms", ENV)
    assert result.code == 0, result.output
    assert sms["check"] == {"ok": True, "detail": "Twilio account 'Example Support', number +33700000001; "
                                                  "nothing was sent"}
    assert sms["limits"] == "short: SMS segments ≤ 3"
    assert sms["recipients"] == 6
    assert [(r.method, r.path, r.query) for r in twilio.requests()] == [
        ("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}.json", {}),
        ("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json",
         {"PhoneNumber": SENDER, "PageSize": "1"}),
    ]
    assert twilio.messages == []


def test_check_names_a_messaging_service(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, sender=SERVICE_SID)
    result, sms = channel_check(home, "sms", ENV)
    assert result.code == 0, result.output
    assert sms["check"]["detail"] == "Twilio account 'Example Support', messaging service 'Crisis texts'; nothing " \
                                     "was sent"


def test_check_of_a_number_the_account_does_not_own_says_what_to_set(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url, sender="+33700000099")
    result, sms = channel_check(home, "sms", ENV)
    assert result.code == 1
    assert sms["check"] == {"ok": False, "detail": "the Twilio account 'Example Support' has no number "
                                                   "+33700000099: set 'from' of channel 'sms' to one of its numbers"}


def test_check_with_refused_credentials_says_what_to_do(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url)
    result, sms = channel_check(home, "sms", {**ENV, "TWILIO_AUTH_TOKEN": "tok-old-1c2d3e4f5a6b"})
    assert result.code == 1
    assert sms["check"] == {"ok": False, "detail": CREDENTIALS_REFUSED}


@pytest.mark.parametrize(("sender", "extra", "message"), [
    ("06 12 34 56 78", "", "channel 'sms' setting 'from': '06 12 34 56 78' is not a sender: write a Twilio number "
                           "with + and the country code (+33700000000), a messaging service SID"),
    (SENDER, "    normalise: ascii\n", "channel 'sms' setting 'normalise'"),
    (SENDER, "    currency: euros\n", "channel 'sms' setting 'currency': 'euros' is not a currency code: three "
                                      "capital letters, such as EUR or USD"),
    (SENDER, "    max_segments: 0\n", "channel 'sms' setting 'max_segments'"),
    (SENDER, "    segments: 2\n", "channel 'sms' has an unknown setting 'segments'"),
])
def test_wrong_settings_are_one_line_naming_the_channel_and_setting(home: Path, twilio: FakeTwilio, sender: str,
                                                                    extra: str, message: str) -> None:
    use_sms(home, twilio.url, sender=sender, extra=extra)
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert twilio.requests() == []


def test_a_wrong_account_sid_is_refused_without_showing_it(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url)
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home,
                     env={**ENV, "TWILIO_ACCOUNT_SID": "SK-not-an-account-sid-0123"})
    assert result.code == 2, result.output
    assert ("setting 'account_sid': not a Twilio Account SID: AC followed by 32 hex digits (Twilio console, "
            "Account Info)") in result.stderr
    assert "SK-not-an-account-sid-0123" not in result.output


def test_credentials_never_appear_in_output_or_ledger(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url)
    results = [run_cli("channels", "--check", home=home, env=ENV), run_cli("channels", "--json", home=home, env=ENV),
               run_cli("validate", home=home, env=ENV)]
    first, _ = trigger(home)
    refused = run_cli("--debug", "trigger", "whatsapp-outage", "--new", "--yes", home=home,
                      env={**ENV, "TWILIO_AUTH_TOKEN": AUTH_TOKEN + "-wrong"})
    results += [first, refused, run_cli("status", "--json", home=home, env=ENV)]
    assert first.code == 0 and len(twilio.messages) == 4
    assert refused.code == 1 and "Twilio refused the credentials" in refused.output
    seen = "\n".join(r.output for r in results) + ledger_text(home)
    assert ACCOUNT_SID not in seen and AUTH_TOKEN not in seen


def test_channels_lists_the_channel_before_its_variables_are_set(home: Path, twilio: FakeTwilio) -> None:
    use_sms(home, twilio.url)
    result = run_cli("channels", "--json", home=home, env={})
    assert result.code == 0, result.output
    sms = {c["name"]: c for c in json.loads(result.stdout)["channels"]}["sms"]
    assert sms["settings"]["account_sid"] == "${TWILIO_ACCOUNT_SID}"
    assert sms["settings"]["auth_token"] == "${TWILIO_AUTH_TOKEN}"
    assert (sms["settings"]["from"], sms["recipients"]) == (SENDER, 6)
