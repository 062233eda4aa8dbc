"""The engine against a real HTTP server: concurrency, signatures, retries, timeouts, failures kept apart."""

from __future__ import annotations

import re
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playbook.engine import backoff
from playbook.home import Home
from playbook.incidents import Session, trigger
from playbook.ledger import Ledger
from playbook.starter import write_starter
from tests.conftest import by_channel, run_trigger
from tests.fakes.http import SECRET, Reply, WebhookSink, use_webhooks

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
    webhook_sink.delay = 0.3
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
    assert max(arrivals) - min(arrivals) < 0.1, "deliveries were not started together"
    assert six_channels < 1.5 * one_channel, (six_channels, one_channel)


def test_each_request_is_signed_and_carries_the_ledger_key(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    keys = {row.key for row in Ledger(home / ".playbook" / "state.db", readonly=True).deliveries(data["incident"])}
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
    assert took < 10
    match = re.search(r"accepts again at (\d\d:\d\d:\d\d) UTC, after the deadline", failed["error"])
    assert match, failed["error"]
    reset = datetime.combine(datetime.now(UTC).date(), datetime.strptime(match[1], "%H:%M:%S").time(), UTC)
    expected = datetime.now(UTC) + timedelta(seconds=600)
    assert abs((reset - expected).total_seconds()) % 86400 < 30
    assert by_channel(data)[("partners", "en")]["status"] == "sent"


def test_an_attempt_that_times_out_is_retried_and_then_sent(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["slow"], languages=["en"], settings={"slow": {"timeout": "1s"}})
    webhook_sink.script("slow", Reply(delay=3))
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    delivery = by_channel(data)[("slow", "en")]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 2)
    first, second = webhook_sink.requests("slow")
    assert 1.2 <= second.at - first.at < 2.9  # 1 s timeout + at most 0.5 s backoff, not the server's 3 s


def test_attempts_that_keep_timing_out_fail_once_retry_for_is_spent(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["slow", "fast"], languages=["en"],
                 settings={"slow": {"timeout": "1s", "retry_for": "3s"}})
    webhook_sink.script("slow", *[Reply(delay=5)] * 10)
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
    assert took < 9


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
    assert took < 8


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
