"""What every social channel promises, proven for each provider against its fake on 127.0.0.1.

Each provider is an adapter (`tests/fakes/social.py`): how to set its channel up in the home, how to script
its fake, how to count what the fake received, and the exact words its errors use. A test proves one
behaviour for every provider that promises it; what only one provider does (threads, facets, sessions,
limits, checks) stays in its own module.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import channel_check, free_port, kill_when, lease_lapsed, ledger_text, run_cli, sent_count, wait_for
from tests.fakes.provider import Answer
from tests.fakes.social import BLUESKY, MASTODON, TELEGRAM, Provider, X

SOCIAL = [X, MASTODON, BLUESKY]
EVERY = [*SOCIAL, TELEGRAM]
# The providers whose rate limit names the moment it ends (Telegram's flood control names seconds to wait).
RESET_NAMED = [p for p in EVERY if p.rate_limited is not None]
DEDUPLICATING = [p for p in EVERY if p.deduplicates]


@pytest.fixture
def fake(provider: Provider) -> Iterator[Any]:
    with provider.start() as started:
        yield started


def ids(providers: list[Provider]) -> list[str]:
    return [p.name for p in providers]


@pytest.mark.parametrize("provider", RESET_NAMED, ids=ids(RESET_NAMED))
def test_rate_limit_ending_inside_the_window_is_waited_out_until_the_reset(
        home: Path, provider: Provider, fake: Any) -> None:
    assert provider.rate_limited is not None
    provider.use(home, fake.url)
    reset = int(time.time()) + 2
    fake.script(provider.post_route, provider.rate_limited(reset))
    result, data = provider.trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in provider.posted(data).values()) == [1, 2]
    assert provider.stored(fake) == 2
    limited, *others = provider.posts(fake)
    retried = [r for r in others if provider.post_key(r) == provider.post_key(limited)]
    assert len(retried) == 1 and retried[0].epoch >= reset - 0.05


@pytest.mark.parametrize("provider", RESET_NAMED, ids=ids(RESET_NAMED))
def test_rate_limit_ending_after_the_deadline_fails_at_once_naming_the_reset(
        home: Path, provider: Provider, fake: Any) -> None:
    assert provider.rate_limited is not None
    provider.use(home, fake.url)
    reset = int(time.time()) + 3 * 3600
    fake.script(provider.post_route, provider.rate_limited(reset), provider.rate_limited(reset))
    started = time.monotonic()
    result, data = provider.trigger(home)
    assert result.code == 1, result.output
    assert time.monotonic() - started < 20
    when = datetime.fromtimestamp(reset, UTC)
    for delivery in provider.posted(data).values():
        assert delivery["status"] == "failed" and delivery["attempts"] == 1
        assert delivery["error"] == (f"{provider.label} rate limit reached (HTTP 429); the provider accepts again at "
                                     f"{when:%H:%M:%S} UTC, after the deadline")


@pytest.mark.parametrize("provider", EVERY, ids=ids(EVERY))
def test_server_error_is_retried_until_the_provider_accepts(home: Path, provider: Provider, fake: Any) -> None:
    provider.use(home, fake.url)
    fake.script(provider.post_route, provider.server_error)
    result, data = provider.trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in provider.posted(data).values()) == [1, 2]
    assert all(d["status"] == "sent" for d in provider.posted(data).values())
    assert len(provider.posts(fake)) == 3 and provider.stored(fake) == 2


@pytest.mark.parametrize("provider", EVERY, ids=ids(EVERY))
def test_refused_credentials_fail_fast_with_what_to_do_while_other_channels_deliver(
        home: Path, provider: Provider, fake: Any) -> None:
    provider.use(home, fake.url)
    started = time.monotonic()
    result, data = provider.trigger(home, env={**provider.env, **provider.revoked})
    assert result.code == 1, result.output
    assert time.monotonic() - started < 15
    for delivery in provider.posted(data).values():
        assert delivery["status"] == "failed" and delivery["attempts"] == 1
        assert delivery["error"] == provider.refused
    others = [d for d in data["deliveries"] if d["channel"] != provider.name]
    assert len(others) == provider.other_deliveries and all(d["status"] == "sent" for d in others)
    assert Counter(fake.route(r) for r in fake.requests()) == provider.asked_when_refused
    assert provider.stored(fake) == 0


@pytest.mark.parametrize("provider", EVERY, ids=ids(EVERY))
def test_check_with_any_refused_secret_says_what_to_do(home: Path, provider: Provider, fake: Any) -> None:
    provider.use(home, fake.url)
    for name, value in {**provider.dotenv, **provider.env}.items():
        # The same shape with other last characters: a key revoked, or a secret that no longer signs.
        result, channel = channel_check(home, provider.name, {**provider.env, name: value[:-4] + "0000"})
        assert result.code == 1, name
        assert channel["check"] == {"ok": False, "detail": provider.refused}, name
    assert provider.posts(fake) == []


@pytest.mark.parametrize("provider", DEDUPLICATING, ids=ids(DEDUPLICATING))
def test_post_whose_answer_was_lost_is_not_posted_twice(home: Path, provider: Provider, fake: Any) -> None:
    # The other language's post must be answered inside the timeout on a loaded machine (a 1 s timeout was
    # missed under a load of 8), and the slow answer must come well after it, never in the same wake-up.
    provider.use(home, fake.url, timeout="3s")
    fake.script(provider.post_route, Answer.slow(10))
    result, data = provider.trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in provider.posted(data).values()) == [1, 2]
    assert len(provider.posts(fake)) == 3 and provider.stored(fake) == 2
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        notes = [row[0] for row in db.execute("SELECT note FROM deliveries WHERE channel = ?", (provider.name,))]
    assert sorted(notes, key=str) == sorted([None, provider.found_again_note], key=str)
    retried = next(d for d in provider.posted(data).values() if d["attempts"] == 2)
    assert (retried["remote_id"] is not None) == provider.found_again_with_id
    if provider.names_the_first_post is not None:
        assert provider.names_the_first_post(fake, provider.posts(fake)[0], retried)


@pytest.mark.parametrize("provider", DEDUPLICATING, ids=ids(DEDUPLICATING))
def test_post_left_unconfirmed_by_a_killed_run_is_not_repeated_on_resume(
        home: Path, provider: Provider, fake: Any) -> None:
    provider.use(home, fake.url, timeout="20s")
    fake.script(provider.post_route, Answer.slow(30))
    # Killed once one post is recorded as sent and the other is posted but never answered. A short lease, so
    # that resume may take over soon after the kill (it refuses while the lease is live).
    kill_when("one post recorded, the other unanswered",
              lambda: sent_count(home, provider.name) == 1 and len(provider.posts(fake)) == 2,
              "trigger", "whatsapp-outage", "--yes", home=home, env={**provider.env, "PLAYBOOK_LEASE_SECONDS": "1"})
    incident = json.loads(run_cli("status", "--json", home=home, env=provider.env).stdout)["incidents"][0]["id"]
    wait_for("the killed run's lease to lapse", lambda: lease_lapsed(home / ".playbook" / "state.db", incident))
    resumed = run_cli("resume", incident, "--json", home=home, env=provider.env)
    assert resumed.code == 0, resumed.output
    redone = provider.posted(json.loads(resumed.stdout))
    assert sorted((d["status"], d["remote_id"] is not None) for d in redone.values()) == [
        ("already-sent", True), ("sent", provider.found_again_with_id)]
    assert len(provider.posts(fake)) == 3 and provider.stored(fake) == 2


@pytest.mark.parametrize("provider", EVERY, ids=ids(EVERY))
def test_unreachable_api_is_retried_then_reported_by_host(home: Path, provider: Provider) -> None:
    port = free_port()
    provider.use(home, f"http://127.0.0.1:{port}", retry_for=provider.retry_for)
    result, data = provider.trigger(home, "--detected-at", "-40m")
    assert result.code == 1, result.output
    for delivery in provider.posted(data).values():
        assert delivery["attempts"] >= 2
        assert delivery["error"].startswith(f"cannot reach 127.0.0.1:{port} (gave up after ")
    check, channel = channel_check(home, provider.name, provider.env)
    assert check.code == 1
    assert channel["check"] == {"ok": False, "detail": f"cannot reach 127.0.0.1:{port}"}
    seen = result.output + check.output + ledger_text(home)
    assert not [s for s in provider.secrets if s in seen]


@pytest.mark.parametrize("provider", EVERY, ids=ids(EVERY))
def test_secret_never_appears_in_output_json_or_ledger(home: Path, provider: Provider, fake: Any) -> None:
    provider.use(home, fake.url)
    env = provider.env
    results = [run_cli("channels", "--check", home=home, env=env), run_cli("channels", "--json", home=home, env=env)]
    first, data = provider.trigger(home)
    results.append(first)
    provider.refuse(fake)
    results.append(run_cli("--debug", "update", data["incident"], "--phase", "identified", "--yes", home=home,
                           env=env))
    results.append(run_cli("status", "--json", home=home, env=env))
    refused = results[-2]
    assert refused.code == 1 and provider.refused in " ".join(refused.output.split())
    seen = "\n".join(r.output for r in results) + ledger_text(home)
    assert provider.stored(fake) == 2
    assert not [s for s in provider.secrets if s in seen]
