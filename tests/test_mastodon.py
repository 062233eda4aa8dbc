"""The Mastodon channel through the real Mastodon.py and the real engine, against a fake instance on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import channel_check, run_cli, set_short
from tests.fakes.mastodon_api import Answer, FakeMastodon, status_length
from tests.fakes.social import MASTODON
from tests.fakes.social import MASTODON_TOKEN as TOKEN

ENV = MASTODON.env


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    with FakeMastodon(TOKEN) as fake:
        yield fake


def test_trigger_posts_one_status_per_language_with_its_language_and_idempotency_key(
        home: Path, mastodon: FakeMastodon) -> None:
    MASTODON.use(home, mastodon.url)
    result, data = MASTODON.trigger(home)
    assert result.code == 0, result.output
    deliveries = MASTODON.posted(data)
    assert set(deliveries) == {"fr", "en"}
    for lang, delivery in deliveries.items():
        status = mastodon.statuses[delivery["remote_id"]]
        assert delivery["status"] == "sent" and delivery["attempts"] == 1
        assert delivery["url"] == f"{mastodon.url}/@example_support/{delivery['remote_id']}"
        assert status["language"] == lang and status["visibility"] == "public"
        assert status["idempotency_key"] == f"{data['incident']}/1-investigating/mastodon/{lang}"
        assert "in_reply_to_id" not in status
    assert mastodon.statuses[deliveries["en"]["remote_id"]]["status"].startswith("Our WhatsApp is disrupted")
    assert mastodon.statuses[deliveries["fr"]["remote_id"]]["status"].startswith("Notre WhatsApp")
    assert all(p.headers["authorization"] == f"Bearer {TOKEN}" for p in mastodon.posts())
    # The instance's limit is read once for the run, before the first status.
    assert [r.path for r in mastodon.requests()].count("/api/v2/instance/") == 1
    assert mastodon.requests()[0].path == "/api/v2/instance/"


def test_later_phases_reply_in_the_thread_of_their_language(home: Path, mastodon: FakeMastodon) -> None:
    MASTODON.use(home, mastodon.url, visibility="unlisted")
    _, first = MASTODON.trigger(home)
    update = run_cli("update", first["incident"], "--phase", "identified", "--yes", "--json", home=home, env=ENV)
    assert update.code == 0, update.output
    for lang, delivery in MASTODON.posted(json.loads(update.stdout)).items():
        status = mastodon.statuses[delivery["remote_id"]]
        assert status["in_reply_to_id"] == MASTODON.posted(first)[lang]["remote_id"]
        assert status["visibility"] == "unlisted" and status["language"] == lang
        assert status["idempotency_key"] == f"{first['incident']}/2-identified/mastodon/{lang}"


def test_refused_status_reports_the_instance_words_and_is_not_retried(home: Path, mastodon: FakeMastodon) -> None:
    MASTODON.use(home, mastodon.url)
    mastodon.script("/api/v1/statuses", *[Answer.unprocessable("Text contains a forbidden word")] * 2)
    result, data = MASTODON.trigger(home)
    assert result.code == 1, result.output
    for delivery in MASTODON.posted(data).values():
        assert delivery["attempts"] == 1
        assert delivery["error"] == ("Mastodon refused the status (HTTP 422): Validation failed: Text contains a "
                                     "forbidden word")


def test_short_block_over_the_default_limit_stops_everything_before_sending(
        home: Path, mastodon: FakeMastodon) -> None:
    MASTODON.use(home, mastodon.url)
    set_short(home, "en", "Sorry. " * 70 + "https://status.example.com/incidents/2026-11-25/whatsapp-business")
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert ("block 'short' is too long for channel 'mastodon': 513/500 characters, URLs count 23; nothing was sent"
            in result.stderr)
    assert mastodon.requests() == []


def test_max_characters_lets_validation_use_a_larger_instance_limit(home: Path) -> None:
    with FakeMastodon(TOKEN, max_characters=1000) as mastodon:
        MASTODON.use(home, mastodon.url, max_characters=1000)
        set_short(home, "en", "Sorry. " * 100)
        result, data = MASTODON.trigger(home)
        assert result.code == 0, result.output
        assert all(d["status"] == "sent" for d in MASTODON.posted(data).values())
        assert status_length(mastodon.statuses[MASTODON.posted(data)["en"]["remote_id"]]["status"]) == 699


def test_status_over_the_instance_own_limit_is_refused_before_posting(home: Path) -> None:
    with FakeMastodon(TOKEN, max_characters=120) as mastodon:
        MASTODON.use(home, mastodon.url)
        result, data = MASTODON.trigger(home)
        assert result.code == 1, result.output
        for delivery in MASTODON.posted(data).values():
            assert delivery["status"] == "failed" and delivery["attempts"] == 1
            assert re.fullmatch(r"block 'short' is \d+/120 characters, URLs count 23, over this instance's limit: "
                                r"shorten it \(and set max_characters: 120 so validation catches it\); nothing was "
                                r"posted", delivery["error"]), delivery["error"]
        assert mastodon.posts() == []
        others = [d for d in data["deliveries"] if d["channel"] != "mastodon"]
        assert all(d["status"] == "sent" for d in others)


@pytest.mark.parametrize(("instance_limit", "per_url", "setting", "ok", "detail"), [
    (500, 23, {}, True, "posts up to 500 characters, links count 23"),
    (1000, 23, {}, True, "posts up to 1000 characters, links count 23; messages are checked against 500: set "
                         "max_characters: 1000 to use them all"),
    (1000, 23, {"max_characters": 1000}, True, "posts up to 1000 characters, links count 23"),
    (400, 23, {}, False, ": the instance allows 400 characters per post, fewer than the 500 messages are checked "
                         "against: set max_characters: 400"),
    (500, 30, {}, False, ": the instance counts each link as 30 characters, more than the 23 messages are "
                         "checked with: set characters_reserved_per_url: 30"),
    (500, 30, {"characters_reserved_per_url": 30}, True, "posts up to 500 characters, links count 30"),
])
def test_check_reads_the_instance_limit_and_link_length(home: Path, instance_limit: int, per_url: int,
                                                        setting: dict[str, Any], ok: bool, detail: str) -> None:
    with FakeMastodon(TOKEN, max_characters=instance_limit) as mastodon:
        mastodon.characters_reserved_per_url = per_url
        MASTODON.use(home, mastodon.url, **setting)
        result, channel = channel_check(home, "mastodon", ENV)
        assert result.code == (0 if ok else 1), result.output
        separator = ", " if ok else ""
        assert channel["check"] == {"ok": ok, "detail": f"@example_support@127.0.0.1{separator}{detail}"}
        limit = 1000 if "max_characters" in setting else 500
        assert channel["limits"] == f"short: characters as Mastodon counts them ≤ {limit}"
        assert [(r.method, r.path) for r in mastodon.requests()] == [
            ("GET", "/api/v1/accounts/verify_credentials"), ("GET", "/api/v2/instance/")]


def test_check_reads_the_limit_of_an_instance_older_than_mastodon_4(home: Path) -> None:
    with FakeMastodon(TOKEN, max_characters=5000, v2_instance=False) as mastodon:
        MASTODON.use(home, mastodon.url)
        result, channel = channel_check(home, "mastodon", ENV)
        assert result.code == 0, result.output
        assert channel["check"]["detail"].startswith("@example_support@127.0.0.1, posts up to 5000 characters")
        assert [r.path for r in mastodon.requests()][-2:] == ["/api/v2/instance/", "/api/v1/instance/"]


@pytest.mark.parametrize(("settings", "error"), [
    ({"visibility": "followers"}, "setting 'visibility': Input should be 'public', 'unlisted', 'private' or "
                                  "'direct'"),
    ({"max_characters": 0}, "setting 'max_characters': Input should be greater than or equal to 1"),
    ({"visiblity": "public"}, "has an unknown setting 'visiblity' (did you mean 'visibility'?)"),
])
def test_wrong_settings_are_named_before_anything_is_sent(home: Path, mastodon: FakeMastodon,
                                                          settings: dict[str, Any], error: str) -> None:
    MASTODON.use(home, mastodon.url, **settings)
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert re.search(r"channels\.yaml:\d+:\d+: channel 'mastodon' " + re.escape(error), result.stderr), result.stderr
    assert mastodon.requests() == []
