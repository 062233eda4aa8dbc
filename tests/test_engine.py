"""The engine against a real HTTP server: concurrency, signatures, retries, timeouts, failures kept apart."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook.commands.publishing import trigger
from playbook.commands.session import Session
from playbook.engine.backoff import backoff
from playbook.engine.recipients import RateLimiter
from playbook.errors import LedgerWriteError
from playbook.home.locate import Home
from playbook.home.starter import write_starter
from playbook.ledger import open_ledger
from playbook.ledger.contract import Claim
from playbook.ledger.sqlite import SqliteLedger
from tests.conftest import by_channel, run_cli, run_main, run_trigger, write
from tests.fakes.http import SECRET, Reply, WebhookSink, use_webhooks
from tests.fakes.smtp import SmtpServer

PLAYBOOK = "whatsapp-outage"



def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_trigger(home: Path) -> float:
    """Seconds an in-process trigger (a new incident each time) takes, planning included; all must go out."""
    session = Session(Home(root=home))
    started = time.monotonic()
    outcome = trigger(session, PLAYBOOK, {}, None, new=True)
    elapsed = time.monotonic() - started
    session.close()
    assert outcome.result is not None and outcome.result.ok
    return elapsed


def test_every_channel_and_language_is_sent_at_once(tmp_path: Path, home: Path,
                                                     webhook_sink: WebhookSink) -> None:
    # Every answer takes 2 s: deliveries started together all arrive before the first answer goes back, and
    # any delivery that waited for another's answer would add 2 s. Margins that hold on a loaded machine.
    answer = 2.0
    webhook_sink.delay = answer
    solo = tmp_path / "solo"
    write_starter(solo)
    use_webhooks(solo, webhook_sink, ["only"])
    timed_trigger(solo)  # warms imports and template caches, so the two timings compare like with like
    one_channel = timed_trigger(solo)
    names = [f"hook{i}" for i in range(6)]
    use_webhooks(home, webhook_sink, names)
    before = len(webhook_sink.requests())
    six_channels = timed_trigger(home)

    arrivals = [r.at for r in webhook_sink.requests()[before:]]
    assert len(arrivals) == 12  # 6 channels x (fr, en)
    assert max(arrivals) - min(arrivals) < answer, "deliveries were not started together"
    assert six_channels < one_channel + answer, (six_channels, one_channel)


def test_each_request_is_signed_and_carries_the_ledger_key(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    keys = {row.key for row in open_ledger(home / ".playbook" / "state.db", readonly=True).deliveries(data["incident"])}
    received = webhook_sink.requests()
    assert len(received) == 4
    for request in received:
        assert request.signed_with(SECRET), request.headers
        assert not request.signed_with(SECRET + "x")
        assert request.key in keys
        assert request.json["idempotency_key"] == request.key
        assert request.json["incident"] == data["incident"]
        assert request.json["blocks"]["short"]
    assert {r.key for r in received} == keys


def test_a_server_error_is_retried_until_it_passes(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"], languages=["en"])
    webhook_sink.script("ops", Reply(503, body={"error": "busy"}))
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    delivery = by_channel(data)[("ops", "en")]
    assert delivery["status"] == "sent"
    assert delivery["attempts"] == 2
    first, second = webhook_sink.requests("ops")
    assert first.key == second.key
    assert second.at - first.at >= 0.25  # the first backoff is 0.25 to 0.5 s


def test_a_dropped_answer_is_retried_with_the_same_key(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"], languages=["en"])
    webhook_sink.script("ops", Reply(drop=True))
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    assert by_channel(data)[("ops", "en")]["attempts"] == 2
    assert len(webhook_sink.keys()) == 1
    assert list(webhook_sink.keys().values()) == [2]


def test_rate_limit_with_retry_after_inside_the_deadline_waits_then_sends(home: Path,
                                                                          webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"], languages=["en"])
    webhook_sink.script("ops", Reply(429, headers={"Retry-After": "2"}, body={"error": "slow down"}))
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    assert by_channel(data)[("ops", "en")]["attempts"] == 2
    first, second = webhook_sink.requests("ops")
    assert second.at - first.at >= 1.9


def test_rate_limit_resetting_after_the_deadline_fails_at_once_with_the_reset_time(
        home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"], languages=["en"])
    webhook_sink.script("ops", Reply(429, headers={"Retry-After": "600"}, body={"error": "quota"}))
    started = time.monotonic()
    result, data = run_trigger(home, "--detected-at", "-29m")
    took = time.monotonic() - started

    assert result.code == 1
    failed = by_channel(data)[("ops", "en")]
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1
    assert len(webhook_sink.requests("ops")) == 1
    assert took < 60  # at once, not after the 600 s the provider asked for
    match = re.search(r"accepts again at (\d\d:\d\d:\d\d) UTC, after the deadline", failed["error"])
    assert match, failed["error"]
    reset = datetime.combine(datetime.now(UTC).date(), datetime.strptime(match[1], "%H:%M:%S").time(), UTC)
    expected = datetime.now(UTC) + timedelta(seconds=600)
    assert abs((reset - expected).total_seconds()) % 86400 < 30
    assert by_channel(data)[("partners", "en")]["status"] == "sent"


def test_an_attempt_that_times_out_is_retried_and_then_sent(home: Path, webhook_sink: WebhookSink) -> None:
    # 3 s per attempt, which the prompt second answer meets even on a loaded machine; the server answers the
    # first attempt only after 10 s, far beyond it.
    use_webhooks(home, webhook_sink, ["slow"], languages=["en"], settings={"slow": {"timeout": "3s"}})
    webhook_sink.script("slow", Reply(delay=10))
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    delivery = by_channel(data)[("slow", "en")]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 2)
    first, second = webhook_sink.requests("slow")
    # Retried long before the server's answer. No lower bound: the server stamps an arrival once it has read
    # the request, late on a loaded machine (test_backoff_spreads_... proves the waits themselves).
    assert second.at - first.at < 10


def test_attempts_that_keep_timing_out_fail_once_retry_for_is_spent(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["slow", "fast"], languages=["en"],
                 settings={"slow": {"timeout": "1s", "retry_for": "3s"}})
    # Answers 30 s late: a run that waited for even one of them would take 30 s, not retry_for's 3 s.
    webhook_sink.script("slow", *[Reply(delay=30)] * 10)
    started = time.monotonic()
    # Detected 30 minutes ago: the window is over, so retry_for alone bounds the retries.
    result, data = run_trigger(home, "--detected-at", "-30m")
    took = time.monotonic() - started

    assert result.code == 1
    failed = by_channel(data)[("slow", "en")]
    assert failed["status"] == "failed"
    assert failed["attempts"] >= 2
    assert failed["attempts"] == len(webhook_sink.requests("slow"))
    assert re.search(r"(no answer within 1s|timed out waiting for the server) \(gave up after \d+ attempts\)",
                     failed["error"]), failed["error"]
    assert by_channel(data)[("fast", "en")]["status"] == "sent"
    assert took < 25


def test_a_refusal_fails_fast_and_the_other_channels_are_delivered(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners", "press"])
    webhook_sink.script("partners", Reply(401, body={"error": "bad signature"}),
                        Reply(401, body={"error": "bad signature"}))
    result, data = run_trigger(home)

    assert result.code == 1
    deliveries = by_channel(data)
    for lang in ("fr", "en"):
        refused = deliveries[("partners", lang)]
        assert refused["status"] == "failed"
        assert refused["attempts"] == 1
        assert refused["error"].startswith("refused (HTTP 401): check the webhook URL and secret")
        assert deliveries[("ops", lang)]["status"] == "sent"
        assert deliveries[("press", lang)]["status"] == "sent"
    assert len(webhook_sink.requests("partners")) == 2
    assert data["ok"] is False


def test_a_rejected_payload_is_not_retried(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"], languages=["en"])
    webhook_sink.script("ops", Reply(422, body={"error": "blocks.short is required"}))
    result, data = run_trigger(home)

    assert result.code == 1
    failed = by_channel(data)[("ops", "en")]
    assert (failed["attempts"], failed["error"]) == (1, 'rejected (HTTP 422): {"error": "blocks.short is required"}')


def test_a_channel_that_is_down_does_not_hold_up_the_others(home: Path, webhook_sink: WebhookSink) -> None:
    down = f"http://127.0.0.1:{closed_port()}/hook"
    use_webhooks(home, webhook_sink, ["down", "ops", "partners"], languages=["en"],
                 settings={"down": {"url": down, "retry_for": "2s"}})
    started = time.monotonic()
    result, data = run_trigger(home, "--detected-at", "-30m")
    took = time.monotonic() - started

    assert result.code == 1
    deliveries = by_channel(data)
    assert deliveries[("down", "en")]["status"] == "failed"
    assert deliveries[("down", "en")]["attempts"] >= 2
    assert deliveries[("down", "en")]["error"].startswith("cannot connect to the server (gave up after")
    assert deliveries[("ops", "en")]["status"] == deliveries[("partners", "en")]["status"] == "sent"
    arrivals = [r.at for r in webhook_sink.requests()]
    assert max(arrivals) - min(arrivals) < 0.25
    # A hang guard, not a speed bound (that is the arrivals above): the run ends about retry_for after it starts,
    # which a loaded machine stretches by the seconds its processes take to start.
    assert took < 60


def test_the_json_result_has_one_row_per_delivery(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    assert {"incident", "phase", "ok", "deliveries"} <= set(data)
    assert (data["phase"], data["ok"]) == ("investigating", True)
    assert data["incident"].startswith("whatsapp-outage-")
    assert len(data["deliveries"]) == 4
    for d in data["deliveries"]:
        assert set(d) == {"channel", "lang", "status", "remote_id", "url", "sent_at", "within_window", "attempts",
                          "error"}
        assert d["status"] == "sent"
        assert d["remote_id"] and d["url"].startswith("https://hooks.example.test/posts/")
        assert d["within_window"] is True
        assert datetime.fromisoformat(d["sent_at"]) <= datetime.fromisoformat(data["deadline"])


def test_backoff_spreads_even_the_first_retry_and_grows_to_its_cap() -> None:
    first = [backoff(1) for _ in range(200)]
    assert all(0.25 <= wait <= 0.5 for wait in first)
    assert max(first) - min(first) > 0.15  # clients that failed together do not retry together
    assert all(0.25 <= backoff(3) <= 2.0 for _ in range(200))
    assert max(backoff(20) for _ in range(200)) <= 30.0


# -- runs always end, whatever dies; a recipient's key never depends on their language

def use_email(home: Path, host: str, port: int, customers: list[str], langs: list[str] | None = None,
              **settings: object) -> None:
    """Make `customers` of the starter home an email channel (plain SMTP, no login) to these addresses."""
    channels = yaml.safe_load((home / "channels.yaml").read_text())
    channels["channels"]["customers"] = {
        "type": "email", "host": host, "port": port, "security": "none", "from": "Support <support@example.com>",
        "recipients": "contacts/customers.csv", "connections": 4, **settings,
    }
    write(home / "channels.yaml", yaml.safe_dump(channels, sort_keys=False))
    rows = "".join(f"{a},{(langs or ['en'])[n % len(langs or ['en'])]}\n" for n, a in enumerate(customers))
    write(home / "contacts" / "customers.csv", "email,language\n" + rows)


def email_statuses(home: Path) -> dict[str, str]:
    ledger = open_ledger(home / ".playbook" / "state.db", readonly=True)
    try:
        return {row.recipient: row.status for i in ledger.all_incidents() for row in ledger.deliveries(i.id)
                if row.channel == "customers" and row.recipient}
    finally:
        ledger.close()


@pytest.mark.timeout(60)
def test_a_ledger_write_failing_mid_list_stops_the_run_at_once_with_one_line(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    customers = [f"c{n}@example.com" for n in range(1000)]
    with SmtpServer(login=None) as smtp:
        use_email(home, smtp.host, smtp.port, customers)
        marks = 0
        real = SqliteLedger.mark_sending

        def full_after_100(self: SqliteLedger, key: str, **kwargs: Any) -> int | None:
            nonlocal marks
            marks += 1
            if marks > 100:
                raise LedgerWriteError(f"the ledger {self.path} cannot be written (database or disk is full)")
            return real(self, key, **kwargs)

        monkeypatch.setattr(SqliteLedger, "mark_sending", full_after_100)
        started = time.monotonic()
        result = run_main("--home", str(home), "trigger", PLAYBOOK, "--yes", "--json")
        took = time.monotonic() - started
        monkeypatch.undo()

        assert result.code == 4, result.output
        (line,) = result.stderr.strip().splitlines()
        db = home / ".playbook" / "state.db"
        assert re.fullmatch(rf"error: the ledger {re.escape(str(db))} cannot be written \(database or disk is full\): "
                            r"the run stopped; the ledger records what went out \('playbook status (\S+)'\); once "
                            r"the cause is fixed, 'playbook resume \1' sends the rest", line), line
        assert took < 20
        # What the ledger says went out did; what went out beyond it was in flight, one per connection at most.
        statuses = email_statuses(home)
        mailed = {a for m in smtp.messages for a in m.rcpt_tos}
        sent = {a for a, s in statuses.items() if s == "sent"}
        assert sent <= mailed
        assert {statuses[a] for a in mailed - sent} <= {"sending"}
        assert len(mailed - sent) <= 4
        assert smtp.count <= 100


@pytest.mark.timeout(60)
def test_a_task_that_dies_stops_the_run_promptly_instead_of_hanging(home: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    customers = [f"c{n}@example.com" for n in range(1000)]
    with SmtpServer(login=None) as smtp:
        use_email(home, smtp.host, smtp.port, customers)
        real = SqliteLedger.claim
        batches = 0

        def broken_third_batch(self: SqliteLedger, keys: Sequence[str]) -> Claim:
            nonlocal batches
            batches += 1
            if batches == 4:  # the first claim is the single-target deliveries'
                raise KeyError("a bug")
            return real(self, keys)

        monkeypatch.setattr(SqliteLedger, "claim", broken_third_batch)
        result = run_main("--home", str(home), "trigger", PLAYBOOK, "--yes")
        monkeypatch.undo()

    assert result.code == 4, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the run stopped: a sending task failed (KeyError: 'a bug', details in the log); "
                           "the ledger records what went out"), line
    assert "Traceback (most recent call last)" in (home / ".playbook" / "playbook.log").read_text()
    assert smtp.count <= 400


@pytest.mark.timeout(60)
def test_a_mail_server_refusing_connections_is_down_as_a_whole_and_the_run_ends_after_retry_for(home: Path) -> None:
    # 400 recipients over 4 connections, each retried for 2 s on its own, would take 200 s.
    customers = [f"c{n}@example.com" for n in range(400)]
    use_email(home, "127.0.0.1", closed_port(), customers, retry_for="2s", timeout="1s")
    started = time.monotonic()
    result, data = run_trigger(home, "--detected-at", "-40m")
    took = time.monotonic() - started

    assert result.code == 1, result.output
    assert took < 15, took
    summary = by_channel(data)[("customers", "en")]
    assert summary["recipients"]["failed"] == len(customers)
    assert re.fullmatch(r"cannot reach 127\.0\.0\.1:\d+: .*\(the channel stayed unreachable until the end of its "
                        r"retries\)", summary["error"]), summary["error"]
    assert set(email_statuses(home).values()) == {"failed"}


def test_a_recipient_whose_language_changed_before_resume_is_not_mailed_again(home: Path) -> None:
    customers = [f"c{n}@example.com" for n in range(20)]
    with SmtpServer(login=None) as smtp:
        use_email(home, smtp.host, smtp.port, customers, langs=["en", "fr"], retry_for="1s")
        for address in customers[:5]:
            smtp.refuse(address, 451, "4.3.0 Try again later")
        # Detected 40 minutes ago: the window is over, so retry_for alone bounds the retries.
        first, data = run_trigger(home, "--detected-at", "-40m")
        assert first.code == 1, first.output
        # Between the run and resume, the list's language column is edited for everyone.
        use_email(home, smtp.host, smtp.port, customers, langs=["fr", "en"], retry_for="1s")
        for address in customers[:5]:
            smtp.allow(address)
        resumed = run_cli("resume", data["incident"], "--json", home=home)

        assert resumed.code == 0, resumed.output
        assert Counter(a for m in smtp.messages for a in m.rcpt_tos) == dict.fromkeys(customers, 1)
        assert set(email_statuses(home).values()) == {"sent"}
        assert len(email_statuses(home)) == len(customers)


def test_the_rate_limiter_gives_each_start_a_slot_one_interval_after_the_last(
        monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def four_starts() -> None:
        limiter = RateLimiter(4)
        monkeypatch.setattr(asyncio, "sleep", record)
        await asyncio.gather(*(limiter.wait() for _ in range(4)))

    asyncio.run(four_starts())
    # The first starts at once; the others wait 0.25 s more each, asked for together as a burst would be.
    assert [round(w, 2) for w in sorted(waits)] == [0.25, 0.5, 0.75]
