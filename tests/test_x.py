"""The X channel through the real tweepy client and the real engine, against a fake X API on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    Result,
    channel_check,
    deliveries,
    free_port,
    lease_lapsed,
    ledger_text,
    run_cli,
    run_trigger,
    sent_count,
    set_short,
    wait_for,
)
from tests.fakes.provider import add_channel
from tests.fakes.x_api import Answer, Credentials, FakeXApi

CREDENTIALS = Credentials(
    consumer_key="ck-7Hq2Vb9LmZ4xRt1Nw8Ys3Pd6",
    consumer_secret="cs-Kf5Gh8Jk2Lq9Wz4Xc7Vb1Nm3Qr6Ts0Ue",
    access_token="at-1860000000-Yp4Rt7Uw2Ie5Oq8As1Df3Gh6Jk9",
    access_token_secret="ats-Zx2Cv5Bn8Mq1Wr4Ty7Ui0Op3As6",
)
ENV = {
    "X_CONSUMER_KEY": CREDENTIALS.consumer_key,
    "X_CONSUMER_SECRET": CREDENTIALS.consumer_secret,
    "X_ACCESS_TOKEN": CREDENTIALS.access_token,
    "X_ACCESS_TOKEN_SECRET": CREDENTIALS.access_token_secret,
}
CREDENTIALS_REFUSED = "X refused the credentials (401): regenerate the access token and secret"


@pytest.fixture
def x_api() -> Iterator[FakeXApi]:
    with FakeXApi(CREDENTIALS) as fake:
        yield fake


def use_x(home: Path, api_base: str, **settings: Any) -> None:
    """Make the starter home's channel `x` a real X account reached at `api_base`."""
    add_channel(home, "x", {"type": "x", "consumer_key": "${X_CONSUMER_KEY}", "consumer_secret": "${X_CONSUMER_SECRET}",
                            "access_token": "${X_ACCESS_TOKEN}", "access_token_secret": "${X_ACCESS_TOKEN_SECRET}",
                            "api_base": api_base, **settings})


def trigger(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Result, dict[str, Any]]:
    return run_trigger(home, *args, env=env or ENV)


def x_deliveries(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return deliveries(data, "x")


def test_trigger_posts_the_short_block_once_per_language(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    result, data = trigger(home)
    assert result.code == 0, result.output
    posted = x_deliveries(data)
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
    use_x(home, x_api.url)
    _, first = trigger(home)
    update = run_cli("update", first["incident"], "--phase", "identified", "--yes", "--json", home=home, env=ENV)
    assert update.code == 0, update.output
    for lang, delivery in x_deliveries(json.loads(update.stdout)).items():
        reply = x_api.tweets[delivery["remote_id"]]["reply"]
        assert reply == {"in_reply_to_tweet_id": x_deliveries(first)[lang]["remote_id"]}


def test_rate_limit_ending_inside_the_window_is_waited_out(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    reset = int(time.time()) + 2
    x_api.script("/2/tweets", Answer.rate_limited(reset))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in x_deliveries(data).values()) == [1, 2]
    _, retried = [p for p in x_api.posts() if p.json == x_api.posts()[0].json]
    assert retried.epoch >= reset - 0.05


def test_rate_limit_ending_after_the_deadline_fails_at_once_naming_the_reset(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    reset = int(time.time()) + 3 * 3600
    x_api.script("/2/tweets", Answer.rate_limited(reset), Answer.rate_limited(reset))
    started = time.monotonic()
    result, data = trigger(home)
    assert result.code == 1, result.output
    assert time.monotonic() - started < 20
    when = datetime.fromtimestamp(reset, UTC)
    for delivery in x_deliveries(data).values():
        assert delivery["status"] == "failed" and delivery["attempts"] == 1
        assert delivery["error"] == (f"X rate limit reached (HTTP 429); the provider accepts again at "
                                     f"{when:%H:%M:%S} UTC, after the deadline")


def test_server_error_is_retried_until_x_accepts(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    x_api.script("/2/tweets", Answer.server_error(503))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in x_deliveries(data).values()) == [1, 2]
    assert all(d["status"] == "sent" for d in x_deliveries(data).values())
    assert len(x_api.tweets) == 2


def test_refused_credentials_fail_fast_with_what_to_do_while_other_channels_deliver(
        home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    result, data = trigger(home, env={**ENV, "X_CONSUMER_KEY": "ck-revoked-Qw3Er6Ty9Ui2"})
    assert result.code == 1, result.output
    for delivery in x_deliveries(data).values():
        assert delivery["status"] == "failed" and delivery["attempts"] == 1
        assert delivery["error"].startswith(CREDENTIALS_REFUSED)
    others = [d for d in data["deliveries"] if d["channel"] != "x"]
    assert len(others) == 4 and all(d["status"] == "sent" for d in others)
    assert len(x_api.posts()) == 2 and not x_api.tweets


def test_duplicate_refusal_means_the_text_is_already_posted(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    x_api.script("/2/tweets", Answer.duplicate(), Answer.duplicate())
    result, data = trigger(home)
    assert result.code == 0, result.output
    for delivery in x_deliveries(data).values():
        assert delivery["status"] == "sent" and delivery["remote_id"] is None and delivery["attempts"] == 1
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        notes = [row[0] for row in db.execute("SELECT note FROM deliveries WHERE channel = 'x'")]
    assert notes == ["X reports a duplicate: already posted (this exact text is on the timeline)"] * 2
    # Without an id or a link, the note is what tells the operator where the post is.
    assert {d["note"] for d in x_deliveries(data).values()} == {notes[0]}
    shown = run_cli("status", data["incident"], home=home, env={"COLUMNS": "250"})
    assert "X reports a duplicate: already posted" in shown.stdout


def test_post_whose_answer_was_lost_is_not_posted_twice(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url, timeout="1s")
    x_api.script("/2/tweets", Answer.slow(4))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in x_deliveries(data).values()) == [1, 2]
    assert len(x_api.posts()) == 3 and len(x_api.tweets) == 2


def test_post_left_unconfirmed_by_a_killed_run_is_not_repeated_on_resume(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url, timeout="20s")
    x_api.script("/2/tweets", Answer.slow(30))
    command = [sys.executable, "-m", "playbook", "--home", str(home), "trigger", "whatsapp-outage", "--yes"]
    # A short lease, so that resume may take over soon after the kill (it refuses while the lease is live).
    with subprocess.Popen(command, env={**os.environ, **ENV, "PLAYBOOK_LEASE_SECONDS": "1"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as run:
        # Killed once the answered post is recorded; the other is posted but never answered.
        wait_for("the answered post to be recorded", lambda: sent_count(home, "x") == 1 and len(x_api.posts()) == 2)
        run.kill()
    incident = json.loads(run_cli("status", "--json", home=home, env=ENV).stdout)["incidents"][0]["id"]
    wait_for("the killed run's lease to lapse", lambda: lease_lapsed(home / ".playbook" / "state.db", incident))
    resumed = run_cli("resume", incident, "--json", home=home, env=ENV)
    assert resumed.code == 0, resumed.output
    redone = x_deliveries(json.loads(resumed.stdout))
    assert sorted((d["status"], d["remote_id"] is None) for d in redone.values()) == [
        ("already-sent", False), ("sent", True)]
    assert len(x_api.posts()) == 3 and len(x_api.tweets) == 2


def test_unreachable_api_is_retried_then_reported_by_host(home: Path) -> None:
    port = free_port()
    use_x(home, f"http://127.0.0.1:{port}", retry_for="1s")
    result, data = trigger(home, "--detected-at", "-40m")
    assert result.code == 1, result.output
    for delivery in x_deliveries(data).values():
        assert delivery["attempts"] >= 2
        assert delivery["error"].startswith(f"cannot reach 127.0.0.1:{port} (gave up after ")


def test_short_block_over_the_weighted_limit_stops_everything(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    set_short(home, "en", "Sorry. " * 45)
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert "block 'short' is too long for channel 'x': 314/280 weighted characters; nothing was sent" in result.stderr
    assert x_api.requests() == []


def test_check_names_the_account(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    result, x = channel_check(home, "x", ENV)
    assert result.code == 0, result.output
    assert x["check"] == {"ok": True, "detail": "@example_support"}
    assert x["limits"] == "short: X weighted characters ≤ 280"
    assert [(r.method, r.path) for r in x_api.requests()] == [("GET", "/2/users/me")]


def test_check_with_refused_credentials_says_what_to_do(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    result, x = channel_check(home, "x", {**ENV, "X_ACCESS_TOKEN_SECRET": "ats-old-Hj4Kl7Zx0Cv3"})
    assert result.code == 1
    assert not x["check"]["ok"] and x["check"]["detail"].startswith(CREDENTIALS_REFUSED)


def test_check_of_an_unreachable_api_names_the_host(home: Path) -> None:
    port = free_port()
    use_x(home, f"http://127.0.0.1:{port}")
    result, x = channel_check(home, "x", ENV)
    assert result.code == 1
    assert x["check"] == {"ok": False, "detail": f"cannot reach 127.0.0.1:{port}"}


def test_credentials_never_appear_in_output_or_ledger(home: Path, x_api: FakeXApi) -> None:
    use_x(home, x_api.url)
    results = [run_cli("channels", "--check", home=home, env=ENV), run_cli("channels", "--json", home=home, env=ENV)]
    first, data = trigger(home)
    results.append(first)
    x_api.script("/2/tweets", Answer.unauthorized(), Answer.unauthorized())
    results.append(run_cli("--debug", "update", data["incident"], "--phase", "identified", "--yes", home=home,
                           env=ENV))
    results.append(run_cli("status", "--json", home=home, env=ENV))
    assert results[-2].code == 1 and CREDENTIALS_REFUSED in results[-2].output
    seen = "\n".join(r.output for r in results) + ledger_text(home)
    assert len(x_api.tweets) == 2
    for value in CREDENTIALS.values():
        assert value not in seen
