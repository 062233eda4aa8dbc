"""The Bluesky channel through the real atproto SDK and the real engine, against a fake PDS on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from playbook.channels.bluesky import record_key
from playbook.publishers.base import Delivery, Message
from tests.conftest import channel_check, run_cli, set_short
from tests.fakes.bluesky_api import TID, Answer, FakeBluesky
from tests.fakes.social import BLUESKY
from tests.fakes.social import BLUESKY_CREATE as CREATE
from tests.fakes.social import BLUESKY_HANDLE as HANDLE
from tests.fakes.social import BLUESKY_PASSWORD as PASSWORD
from tests.fakes.social import BLUESKY_SESSION as SESSION

ENV = BLUESKY.env


@pytest.fixture
def bluesky() -> Iterator[FakeBluesky]:
    with FakeBluesky(HANDLE, PASSWORD) as fake:
        yield fake


def record_of(fake: FakeBluesky, delivery: dict[str, Any]) -> dict[str, Any]:
    """The stored post a delivery's remote_id (`<at-uri>|<cid>`) names, checked against the store."""
    uri, _, cid = delivery["remote_id"].partition("|")
    stored = fake.records[uri.rsplit("/", 1)[-1]]
    assert (stored["uri"], stored["cid"]) == (uri, cid)
    value: dict[str, Any] = stored["value"]
    return value


def test_trigger_posts_one_post_per_language_with_its_language_and_links(home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    result, data = BLUESKY.trigger(home)
    assert result.code == 0, result.output
    deliveries = BLUESKY.posted(data)
    assert set(deliveries) == {"fr", "en"}
    for lang, delivery in deliveries.items():
        record = record_of(bluesky, delivery)
        rkey = delivery["remote_id"].partition("|")[0].rsplit("/", 1)[-1]
        assert delivery["status"] == "sent" and delivery["attempts"] == 1
        assert delivery["url"] == f"https://bsky.app/profile/{HANDLE}/post/{rkey}"
        assert TID.match(rkey)
        assert record["langs"] == [lang] and "reply" not in record
        links = [f["features"][0]["uri"] for f in record["facets"]]
        assert links == ["https://example.com/chat", "https://status.example.com"]
    assert record_of(bluesky, deliveries["en"])["text"].startswith("Our WhatsApp is disrupted")
    assert record_of(bluesky, deliveries["fr"])["text"].startswith("Notre WhatsApp")


def test_link_facets_count_utf8_bytes_not_characters(home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    set_short(home, "fr", "Réponses retardées — désolés ! Écrivez-nous : https://example.com/aide/café, "
                          "suivi sur https://status.example.com.")
    result, data = BLUESKY.trigger(home)
    assert result.code == 0, result.output
    record = record_of(bluesky, BLUESKY.posted(data)["fr"])
    text: str = record["text"]
    raw = text.encode()
    expected = []
    for url in ("https://example.com/aide/café", "https://status.example.com"):
        start = len(text[:text.index(url)].encode())
        expected.append({"byteStart": start, "byteEnd": start + len(url.encode()), "uri": url})
    found = [{**{k: f["index"][k] for k in ("byteStart", "byteEnd")}, "uri": f["features"][0]["uri"]}
             for f in record["facets"]]
    assert found == expected
    assert [raw[f["byteStart"]:f["byteEnd"]].decode() for f in found] == [f["uri"] for f in found]
    # The accents before the first link shift its byte offset away from its character offset.
    assert found[0]["byteStart"] > text.index("https://example.com/aide/café")


def test_one_session_serves_every_post_and_retry_of_the_run(home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    bluesky.script(CREATE, Answer.server_error(503), Answer.rate_limited(time.time() + 1))
    result, data = BLUESKY.trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in BLUESKY.posted(data).values()) == [2, 2]
    assert len(bluesky.requests(CREATE)) == 4 and len(bluesky.records) == 2
    assert len(bluesky.requests(SESSION)) == 1
    session = bluesky.requests(SESSION)[0]
    assert session.params == {"identifier": HANDLE, "password": PASSWORD}


def test_a_session_close_to_expiry_is_refreshed_not_created_again(home: Path) -> None:
    with FakeBluesky(HANDLE, PASSWORD, access_lifetime=timedelta(minutes=10)) as bluesky:
        BLUESKY.use(home, bluesky.url)
        result, data = BLUESKY.trigger(home)
        assert result.code == 0, result.output
        assert all(d["status"] == "sent" for d in BLUESKY.posted(data).values())
        assert len(bluesky.requests(SESSION)) == 1
        assert len(bluesky.requests("com.atproto.server.refreshSession")) >= 2


def test_a_session_the_server_ended_is_signed_in_again(home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    bluesky.script(CREATE, Answer.expired_token())
    result, data = BLUESKY.trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in BLUESKY.posted(data).values()) == [1, 2]
    assert len(bluesky.requests(SESSION)) == 2 and len(bluesky.records) == 2


def test_later_phases_reply_in_the_thread_of_their_language(home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    _, first = BLUESKY.trigger(home)
    update = run_cli("update", first["incident"], "--phase", "identified", "--yes", "--json", home=home, env=ENV)
    assert update.code == 0, update.output
    for lang, delivery in BLUESKY.posted(json.loads(update.stdout)).items():
        uri, _, cid = BLUESKY.posted(first)[lang]["remote_id"].partition("|")
        reply = record_of(bluesky, delivery)["reply"]
        assert reply["root"] == reply["parent"]
        assert {k: reply["root"][k] for k in ("uri", "cid")} == {"uri": uri, "cid": cid}
        assert record_of(bluesky, delivery)["langs"] == [lang]


def test_invalid_request_reports_the_server_words_and_is_not_retried(home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    refusal = Answer(400, {"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post record: nope"})
    bluesky.script(CREATE, refusal, refusal)
    result, data = BLUESKY.trigger(home)
    assert result.code == 1, result.output
    for delivery in BLUESKY.posted(data).values():
        assert delivery["attempts"] == 1
        assert delivery["error"] == ("Bluesky refused the post (HTTP 400): InvalidRequest: Invalid app.bsky.feed.post "
                                     "record: nope")


def test_short_block_over_300_graphemes_stops_everything_before_sending(home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    set_short(home, "en", "Sorry 🙇🏽‍♀️. " * 33 + "https://status.example.com")
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert ("block 'short' is too long for channel 'bluesky': 323/300 graphemes, 851/3,000 bytes; nothing was sent"
            in result.stderr)
    assert bluesky.requests() == []


def test_a_text_under_300_graphemes_but_over_3000_bytes_stops_everything_before_sending(
        home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    set_short(home, "en", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466" * 250)  # 25 bytes each
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert ("block 'short' is too long for channel 'bluesky': 250/300 graphemes, 6,250/3,000 bytes, over 3,000 "
            "bytes; nothing was sent") in result.stderr
    assert bluesky.requests() == []


def delivery(key: str, deadline: datetime) -> Delivery:
    return Delivery(key=key, incident_id="i", playbook_id="p", phase="investigating", channel="bluesky", lang="en",
                    message=Message(lang="en", blocks={"short": "x"}, template="t"), deadline=deadline)


def test_record_key_is_a_tid_fixed_by_the_delivery() -> None:
    deadline = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    keys = [record_key(delivery(f"whatsapp-outage-1/{seq}-investigating/bluesky/{lang}", deadline))
            for seq in (1, 2) for lang in ("fr", "en")]
    assert all(TID.match(k) for k in keys) and len(set(keys)) == 4
    assert keys[0] == record_key(delivery("whatsapp-outage-1/1-investigating/bluesky/fr", deadline))
    # Its time is the deadline's second, so it sorts among the account's other posts as a real client's would.
    value = 0
    for char in keys[0]:
        value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
    assert (value >> 10) // 1_000_000 == int(deadline.timestamp())


def test_check_signs_in_and_names_the_profile(home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    result, channel = channel_check(home, "bluesky", ENV)
    assert result.code == 0, result.output
    assert channel["check"] == {"ok": True, "detail": f"@{HANDLE} (Example Support)"}
    assert channel["limits"] == "short: graphemes (and 3,000 UTF-8 bytes) ≤ 300"
    assert [bluesky.route(r) for r in bluesky.requests()] == [SESSION, "app.bsky.actor.getProfile"]
    assert bluesky.requests()[1].params == {"actor": HANDLE}


@pytest.mark.parametrize(("settings", "error"), [
    ("    password: ${BLUESKY_APP_PASSWORD}\n", "has an unknown setting 'password' (did you mean 'app_password'?)"),
    ("    api_base: bsky.social\n", "setting 'api_base': Input should be a valid URL"),
])
def test_wrong_settings_are_named_before_anything_is_sent(home: Path, bluesky: FakeBluesky, settings: str,
                                                          error: str) -> None:
    BLUESKY.use(home, bluesky.url)
    channels = home / "channels.yaml"
    text = channels.read_text(encoding="utf-8").replace(f"    api_base: {bluesky.url}\n", settings)
    channels.write_text(text, encoding="utf-8")
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert re.search(r"channels\.yaml:\d+:\d+: channel 'bluesky' " + re.escape(error), result.stderr), result.stderr
    assert bluesky.requests() == []


def test_empty_handle_is_refused_naming_the_setting(home: Path, bluesky: FakeBluesky) -> None:
    BLUESKY.use(home, bluesky.url)
    channels = home / "channels.yaml"
    channels.write_text(channels.read_text(encoding="utf-8").replace(f"'@{HANDLE}'", "'@'"), encoding="utf-8")
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert ("channel 'bluesky' setting 'handle': is empty: write the account's handle, e.g. example.bsky.social"
            in result.stderr)
