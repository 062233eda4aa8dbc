"""The X channel through the real tweepy client and the real engine, against a fake X API on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import channel_check, run_cli, set_short
from tests.fakes.social import X_CREDENTIALS, X
from tests.fakes.x_api import Answer, FakeXApi

ENV = X.env


@pytest.fixture
def x_api() -> Iterator[FakeXApi]:
    with FakeXApi(X_CREDENTIALS) as fake:
        yield fake


def test_trigger_posts_the_short_block_once_per_language(home: Path, x_api: FakeXApi) -> None:
    X.use(home, x_api.url)
    result, data = X.trigger(home)
    assert result.code == 0, result.output
    posted = X.posted(data)
    assert set(posted) == {"fr", "en"}
    for lang, delivery in posted.items():
        tweet_id = delivery["remote_id"]
        assert delivery["status"] == "sent" and delivery["attempts"] == 1
        assert delivery["url"] == f"https://x.com/i/web/status/{tweet_id}"
        assert "reply" not in x_api.tweets[tweet_id], lang
    assert x_api.tweets[posted["en"]["remote_id"]]["text"].startswith("Our WhatsApp is disrupted")
    assert x_api.tweets[posted["fr"]["remote_id"]]["text"].startswith("Notre WhatsApp")
    assert len(x_api.posts()) == 2
    for request in x_api.posts():
        assert request.headers["authorization"].startswith("OAuth ")
        assert "Tweepy/" in request.headers["user-agent"]


def test_later_phases_reply_to_the_first_post_of_their_language(home: Path, x_api: FakeXApi) -> None:
    X.use(home, x_api.url)
    _, first = X.trigger(home)
    update = run_cli("update", first["incident"], "--phase", "identified", "--yes", "--json", home=home, env=ENV)
    assert update.code == 0, update.output
    for lang, delivery in X.posted(json.loads(update.stdout)).items():
        reply = x_api.tweets[delivery["remote_id"]]["reply"]
        assert reply == {"in_reply_to_tweet_id": X.posted(first)[lang]["remote_id"]}


def test_duplicate_refusal_means_the_text_is_already_posted(home: Path, x_api: FakeXApi) -> None:
    X.use(home, x_api.url)
    x_api.script("/2/tweets", Answer.duplicate(), Answer.duplicate())
    result, data = X.trigger(home)
    assert result.code == 0, result.output
    for delivery in X.posted(data).values():
        assert delivery["status"] == "sent" and delivery["remote_id"] is None and delivery["attempts"] == 1
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        notes = [row[0] for row in db.execute("SELECT note FROM deliveries WHERE channel = 'x'")]
    assert notes == ["X reports a duplicate: already posted (this exact text is on the timeline)"] * 2
    # Without an id or a link, the note is what tells the operator where the post is.
    assert {d["note"] for d in X.posted(data).values()} == {notes[0]}
    shown = run_cli("status", data["incident"], home=home, env={"COLUMNS": "250"})
    assert "X reports a duplicate: already posted" in shown.stdout


def test_short_block_over_the_weighted_limit_stops_everything(home: Path, x_api: FakeXApi) -> None:
    X.use(home, x_api.url)
    set_short(home, "en", "Sorry. " * 45)
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert "block 'short' is too long for channel 'x': 314/280 weighted characters; nothing was sent" in result.stderr
    assert x_api.requests() == []


def test_check_names_the_account(home: Path, x_api: FakeXApi) -> None:
    X.use(home, x_api.url)
    result, x = channel_check(home, "x", ENV)
    assert result.code == 0, result.output
    assert x["check"] == {"ok": True, "detail": "@example_support"}
    assert x["limits"] == "short: X weighted characters ≤ 280"
    assert [(r.method, r.path) for r in x_api.requests()] == [("GET", "/2/users/me")]
