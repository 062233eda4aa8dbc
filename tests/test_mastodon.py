"""The Mastodon channel through the real Mastodon.py and the real engine, against a fake instance on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    Result,
    channel_check,
    deliveries,
    free_port,
    kill_when,
    lease_lapsed,
    ledger_text,
    run_cli,
    run_trigger,
    sent_count,
    set_short,
    wait_for,
)
from tests.fakes.mastodon_api import Answer, FakeMastodon, status_length
from tests.fakes.provider import add_channel

TOKEN = "mst-Qf8Zr2Lx6Vb1Nw4Ks7Tp0Yh3Gj5Dc9"
ENV = {"MASTODON_TOKEN": TOKEN}
TOKEN_REFUSED = "Mastodon refused the access token (HTTP 401: The access token is invalid): generate a new one"


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    with FakeMastodon(TOKEN) as fake:
        yield fake


def use_mastodon(home: Path, api_base: str, **settings: Any) -> None:
    """Add channel `mastodon`, a Mastodon account at `api_base`, to every phase of the starter home."""
    add_channel(home, "mastodon", {"type": "mastodon", "api_base": api_base, "access_token": "${MASTODON_TOKEN}",
                                   **settings})


def trigger(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Result, dict[str, Any]]:
    return run_trigger(home, *args, env=env or ENV)


def posted(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return deliveries(data, "mastodon")


def test_trigger_posts_one_status_per_language_with_its_language_and_idempotency_key(
        home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url)
    result, data = trigger(home)
    assert result.code == 0, result.output
    deliveries = posted(data)
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
    use_mastodon(home, mastodon.url, visibility="unlisted")
    _, first = trigger(home)
    update = run_cli("update", first["incident"], "--phase", "identified", "--yes", "--json", home=home, env=ENV)
    assert update.code == 0, update.output
    for lang, delivery in posted(json.loads(update.stdout)).items():
        status = mastodon.statuses[delivery["remote_id"]]
        assert status["in_reply_to_id"] == posted(first)[lang]["remote_id"]
        assert status["visibility"] == "unlisted" and status["language"] == lang
        assert status["idempotency_key"] == f"{first['incident']}/2-identified/mastodon/{lang}"


def test_rate_limit_is_waited_out_until_the_reset_the_instance_names(home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url)
    reset = datetime.now(UTC) + timedelta(seconds=2)
    mastodon.script("/api/v1/statuses", Answer.rate_limited(reset))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in posted(data).values()) == [1, 2]
    assert len(mastodon.statuses) == 2
    limited = mastodon.posts()[0]
    retried = next(p for p in mastodon.posts()[1:] if p.headers["idempotency-key"] == limited.headers[
        "idempotency-key"])
    assert retried.epoch >= reset.timestamp() - 0.05


def test_rate_limit_ending_after_the_deadline_fails_at_once_naming_the_reset(
        home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url)
    reset = datetime.now(UTC) + timedelta(hours=3)
    mastodon.script("/api/v1/statuses", Answer.rate_limited(reset), Answer.rate_limited(reset))
    started = time.monotonic()
    result, data = trigger(home)
    assert result.code == 1, result.output
    assert time.monotonic() - started < 20
    for delivery in posted(data).values():
        assert delivery["status"] == "failed" and delivery["attempts"] == 1
        assert delivery["error"] == (f"Mastodon rate limit reached (HTTP 429); the provider accepts again at "
                                     f"{reset:%H:%M:%S} UTC, after the deadline")


def test_server_error_is_retried_until_the_instance_accepts(home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url)
    mastodon.script("/api/v1/statuses", Answer.server_error(503))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in posted(data).values()) == [1, 2]
    assert all(d["status"] == "sent" for d in posted(data).values())
    assert len(mastodon.statuses) == 2


def test_refused_token_fails_fast_with_what_to_do_while_other_channels_deliver(
        home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url)
    result, data = trigger(home, env={"MASTODON_TOKEN": "mst-revoked-Hh2Jj4Kk6"})
    assert result.code == 1, result.output
    for delivery in posted(data).values():
        assert delivery["status"] == "failed" and delivery["attempts"] == 1
        assert delivery["error"].startswith(TOKEN_REFUSED)
        assert "Preferences > Development" in delivery["error"]
    others = [d for d in data["deliveries"] if d["channel"] != "mastodon"]
    assert len(others) == 6 and all(d["status"] == "sent" for d in others)
    assert len(mastodon.posts()) == 2 and not mastodon.statuses


def test_refused_status_reports_the_instance_words_and_is_not_retried(home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url)
    mastodon.script("/api/v1/statuses", *[Answer.unprocessable("Text contains a forbidden word")] * 2)
    result, data = trigger(home)
    assert result.code == 1, result.output
    for delivery in posted(data).values():
        assert delivery["attempts"] == 1
        assert delivery["error"] == ("Mastodon refused the status (HTTP 422): Validation failed: Text contains a "
                                     "forbidden word")


def test_short_block_over_the_default_limit_stops_everything_before_sending(
        home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url)
    set_short(home, "en", "Sorry. " * 70 + "https://status.example.com/incidents/2026-11-25/whatsapp-business")
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert ("block 'short' is too long for channel 'mastodon': 513/500 characters, URLs count 23; nothing was sent"
            in result.stderr)
    assert mastodon.requests() == []


def test_max_characters_lets_validation_use_a_larger_instance_limit(home: Path) -> None:
    with FakeMastodon(TOKEN, max_characters=1000) as mastodon:
        use_mastodon(home, mastodon.url, max_characters=1000)
        set_short(home, "en", "Sorry. " * 100)
        result, data = trigger(home)
        assert result.code == 0, result.output
        assert all(d["status"] == "sent" for d in posted(data).values())
        assert status_length(mastodon.statuses[posted(data)["en"]["remote_id"]]["status"]) == 699


def test_status_over_the_instance_own_limit_is_refused_before_posting(home: Path) -> None:
    with FakeMastodon(TOKEN, max_characters=120) as mastodon:
        use_mastodon(home, mastodon.url)
        result, data = trigger(home)
        assert result.code == 1, result.output
        for delivery in posted(data).values():
            assert delivery["status"] == "failed" and delivery["attempts"] == 1
            assert re.fullmatch(r"block 'short' is \d+/120 characters, URLs count 23, over this instance's limit: "
                                r"shorten it \(and set max_characters: 120 so validation catches it\); nothing was "
                                r"posted", delivery["error"]), delivery["error"]
        assert mastodon.posts() == []
        others = [d for d in data["deliveries"] if d["channel"] != "mastodon"]
        assert all(d["status"] == "sent" for d in others)


def test_status_whose_answer_was_lost_is_not_posted_twice(home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url, timeout="1s")
    mastodon.script("/api/v1/statuses", Answer.slow(4))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in posted(data).values()) == [1, 2]
    assert len(mastodon.posts()) == 3 and len(mastodon.statuses) == 2
    first, *_ = mastodon.posts()
    delivery = next(d for d in posted(data).values() if d["attempts"] == 2)
    assert mastodon.statuses[delivery["remote_id"]]["idempotency_key"] == first.headers["idempotency-key"]


def test_status_left_unconfirmed_by_a_killed_run_is_not_repeated_on_resume(
        home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url, timeout="20s")
    mastodon.script("/api/v1/statuses", Answer.slow(30))
    # Killed once one post is recorded as sent and the other waits on its answer. A short lease, so that
    # resume may take over soon after the kill (it refuses while the lease is live).
    kill_when("one post recorded, the other unanswered", lambda: sent_count(home, "mastodon") == 1,
              "trigger", "whatsapp-outage", "--yes", home=home, env={**ENV, "PLAYBOOK_LEASE_SECONDS": "1"})
    incident = json.loads(run_cli("status", "--json", home=home, env=ENV).stdout)["incidents"][0]["id"]
    wait_for("the killed run's lease to lapse", lambda: lease_lapsed(home / ".playbook" / "state.db", incident))
    resumed = run_cli("resume", incident, "--json", home=home, env=ENV)
    assert resumed.code == 0, resumed.output
    redone = posted(json.loads(resumed.stdout))
    assert sorted(d["status"] for d in redone.values()) == ["already-sent", "sent"]
    assert len(mastodon.posts()) == 3 and len(mastodon.statuses) == 2


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
        use_mastodon(home, mastodon.url, **setting)
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
        use_mastodon(home, mastodon.url)
        result, channel = channel_check(home, "mastodon", ENV)
        assert result.code == 0, result.output
        assert channel["check"]["detail"].startswith("@example_support@127.0.0.1, posts up to 5000 characters")
        assert [r.path for r in mastodon.requests()][-2:] == ["/api/v2/instance/", "/api/v1/instance/"]


def test_check_with_a_refused_token_says_what_to_do(home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url)
    result, channel = channel_check(home, "mastodon", {"MASTODON_TOKEN": "mst-old-Pp9Oo8Ii7"})
    assert result.code == 1
    assert not channel["check"]["ok"] and channel["check"]["detail"].startswith(TOKEN_REFUSED)


@pytest.mark.parametrize(("settings", "error"), [
    ({"visibility": "followers"}, "setting 'visibility': Input should be 'public', 'unlisted', 'private' or "
                                  "'direct'"),
    ({"max_characters": 0}, "setting 'max_characters': Input should be greater than or equal to 1"),
    ({"visiblity": "public"}, "has an unknown setting 'visiblity' (did you mean 'visibility'?)"),
])
def test_wrong_settings_are_named_before_anything_is_sent(home: Path, mastodon: FakeMastodon,
                                                          settings: dict[str, Any], error: str) -> None:
    use_mastodon(home, mastodon.url, **settings)
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env=ENV)
    assert result.code == 2, result.output
    assert re.search(r"channels\.yaml:\d+:\d+: channel 'mastodon' " + re.escape(error), result.stderr), result.stderr
    assert mastodon.requests() == []


def test_unreachable_instance_is_retried_then_reported_by_host(home: Path) -> None:
    port = free_port()
    use_mastodon(home, f"http://127.0.0.1:{port}", retry_for="1s")
    result, data = trigger(home, "--detected-at", "-40m")
    assert result.code == 1, result.output
    for delivery in posted(data).values():
        assert delivery["attempts"] >= 2
        assert delivery["error"].startswith(f"cannot reach 127.0.0.1:{port} (gave up after ")


def test_access_token_never_appears_in_output_or_ledger(home: Path, mastodon: FakeMastodon) -> None:
    use_mastodon(home, mastodon.url)
    results = [run_cli("channels", "--check", home=home, env=ENV), run_cli("channels", "--json", home=home, env=ENV)]
    first, data = trigger(home)
    results.append(first)
    mastodon.script("/api/v1/statuses", Answer.unauthorized(), Answer.unauthorized())
    results.append(run_cli("--debug", "update", data["incident"], "--phase", "identified", "--yes", home=home,
                           env=ENV))
    results.append(run_cli("status", "--json", home=home, env=ENV))
    assert results[-2].code == 1 and "Mastodon refused the access token" in results[-2].output
    seen = "\n".join(r.output for r in results) + ledger_text(home)
    assert len(mastodon.statuses) == 2
    assert TOKEN not in seen
