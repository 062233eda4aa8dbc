"""The Apprise channel through the real Apprise library and engine, against local HTTP receivers (json://, ntfy://)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from playbook import secrets
from playbook.channels.apprise import AppriseConfig, ApprisePublisher
from playbook.publishers.base import ChannelContext, Delivery, Failure, Message, Receipt
from tests.conftest import Result, deliveries, free_port, ledger_text, run_cli, run_trigger, write
from tests.fakes.http import Reply, WebhookSink

ENV = {"HOOK_PASSWORD": "hookpass-9f8e7d6c5b", "NTFY_TOKEN": "tk_4b3c2d1e0f9a8b7c", "NTFY_TOPIC": "crisis-topic-5e6f"}


def use_apprise(home: Path, urls: list[str], *, extra: str = "") -> None:
    """Add channel `team` (Apprise, notifying `urls`) to the first phase of the starter home."""
    channels = home / "channels.yaml"
    listed = "".join(f"      - {url}\n" for url in urls)
    channel = f"  team:\n    type: apprise\n    urls:\n{listed}{extra}"
    channels.write_text(channels.read_text(encoding="utf-8") + channel, encoding="utf-8")
    playbook = home / "playbooks" / "whatsapp-outage.yaml"
    text, count = re.subn(r"investigating: \{channels: \[([^\]]*)\]", r"investigating: {channels: [\1, team]",
                          playbook.read_text(encoding="utf-8"))
    assert count == 1
    playbook.write_text(text, encoding="utf-8")


def json_url(sink: WebhookSink) -> str:
    return f"json://ops:${{HOOK_PASSWORD}}@127.0.0.1:{sink.port}/hook"


def ntfy_url(sink: WebhookSink) -> str:
    return f"ntfy://${{NTFY_TOKEN}}@127.0.0.1:{sink.port}/${{NTFY_TOPIC}}"


def trigger(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Result, dict[str, Any]]:
    return run_trigger(home, *args, env=ENV if env is None else env)


def team(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return deliveries(data, "team")



def test_every_url_gets_the_title_and_body_in_each_language(home: Path, webhook_sink: WebhookSink) -> None:
    use_apprise(home, [json_url(webhook_sink), ntfy_url(webhook_sink)])
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert {lang: (row["status"], row["attempts"]) for lang, row in team(data).items()} == {
        "fr": ("sent", 1), "en": ("sent", 1)}
    hooks = {r.json["title"]: r for r in webhook_sink.requests("hook")}
    assert sorted(hooks) == ["Messages WhatsApp perturbés\u00a0: nous restons joignables par e-mail, téléphone et chat",
                             "WhatsApp messages delayed: you can still reach us by email, phone and chat"]
    english = hooks["WhatsApp messages delayed: you can still reach us by email, phone and chat"]
    assert english.json["message"].startswith("Since ") and english.json["message"].endswith("The Example team")
    assert english.headers["authorization"] == "Basic b3BzOmhvb2twYXNzLTlmOGU3ZDZjNWI="  # ops:${HOOK_PASSWORD}
    pushes = webhook_sink.requests("/")
    assert sorted(p.json["title"] for p in pushes) == sorted(hooks)
    assert {p.json["topic"] for p in pushes} == {ENV["NTFY_TOPIC"]}
    assert {p.headers["authorization"] for p in pushes} == {f"Bearer {ENV['NTFY_TOKEN']}"}


def test_block_short_sends_the_short_block(home: Path, webhook_sink: WebhookSink) -> None:
    use_apprise(home, [json_url(webhook_sink)], extra="    block: short\n")
    result, _ = trigger(home)
    assert result.code == 0, result.output
    messages = sorted(r.json["message"] for r in webhook_sink.requests("hook"))
    assert messages[0].startswith("Notre WhatsApp est perturbé") and messages[1].startswith("Our WhatsApp is disrupted")
    assert all(len(m) < 280 for m in messages)


def test_a_rate_limited_or_failing_url_is_retried_alone_until_it_takes_the_message(
        home: Path, webhook_sink: WebhookSink) -> None:
    use_apprise(home, [json_url(webhook_sink), ntfy_url(webhook_sink)])
    webhook_sink.script("hook", Reply(429, body="slow down"), Reply(503, body="busy"))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert {lang: (row["status"], row["attempts"]) for lang, row in team(data).items()} == {
        "fr": ("sent", 2), "en": ("sent", 2)}
    assert len(webhook_sink.requests("hook")) == 4
    assert len(webhook_sink.requests("/")) == 2  # the URL that took the message first is not notified again


def test_refused_credentials_fail_fast_naming_only_scheme_and_host_while_the_rest_delivers(
        home: Path, webhook_sink: WebhookSink) -> None:
    use_apprise(home, [json_url(webhook_sink), ntfy_url(webhook_sink)])
    webhook_sink.script("hook", *[Reply(401, body={"error": "unauthorized"})] * 4)
    started = time.monotonic()
    result, data = trigger(home)
    assert result.code == 1, result.output
    assert time.monotonic() - started < 15
    for row in team(data).values():
        assert row["status"] == "failed" and row["attempts"] == 1
        assert row["error"] == (f"json://127.0.0.1:{webhook_sink.port} refused the credentials (HTTP 401): "
                                "check urls.0 of channel 'team'")
    assert len(webhook_sink.requests("hook")) == 2 and len(webhook_sink.requests("/")) == 2
    others = [d for d in data["deliveries"] if d["channel"] != "team"]
    assert len(others) == 6 and all(d["status"] == "sent" for d in others)


def test_an_unreachable_url_is_retried_then_named_by_scheme_and_host(home: Path, webhook_sink: WebhookSink) -> None:
    port = free_port()
    use_apprise(home, [f"json://ops:${{HOOK_PASSWORD}}@127.0.0.1:{port}/hook", ntfy_url(webhook_sink)],
                extra="    retry_for: 1s\n")
    # Detected 40 minutes ago: the window is missed, so retries stop after `retry_for`.
    result, data = trigger(home, "--detected-at", "-40m")
    assert result.code == 1, result.output
    for row in team(data).values():
        assert row["attempts"] >= 2
        assert row["error"].startswith(f"json://127.0.0.1:{port} failed (gave up after ")
    assert len(webhook_sink.requests("/")) == 2


def test_text_over_a_services_limit_stops_everything_before_sending(home: Path, webhook_sink: WebhookSink) -> None:
    # Discord takes 2,000 characters; the limit is known offline, so Discord itself is never contacted.
    use_apprise(home, [json_url(webhook_sink), "discord://4242424242/${DISCORD_TOKEN}"])
    template = home / "templates" / "whatsapp-outage" / "investigating.en.j2"
    text = template.read_text(encoding="utf-8")
    write(template, re.sub(r"(\{% block body %\}).*?(\{% endblock %\})", r"\1" + "We are sorry. " * 150 + r"\2",
                           text, count=1, flags=re.DOTALL))
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env={**ENV, "DISCORD_TOKEN": "dtok-1a2b3c"})
    assert result.code == 2, result.output
    assert ("block 'body' is too long for channel 'team': 2099/2000 characters, Discord's limit; nothing was sent"
            in result.stderr)
    assert webhook_sink.requests() == []
    listing = {c["name"]: c for c in json.loads(run_cli("channels", "--json", home=home, env=ENV).stdout)["channels"]}
    assert listing["team"]["limits"] == "body: characters (Discord) ≤ 2000"


@pytest.mark.parametrize("url", ["nonsense://${SERVICE_TOKEN}@example.org/x", "discord://${SERVICE_TOKEN}",
                                 "${SERVICE_TOKEN}"])
def test_a_url_apprise_does_not_know_is_one_line_that_does_not_show_it(home: Path, webhook_sink: WebhookSink,
                                                                       url: str) -> None:
    use_apprise(home, [json_url(webhook_sink), url])
    env = {**ENV, "SERVICE_TOKEN": "svc-token-7d8e9f0a"}
    for command in (("validate",), ("trigger", "whatsapp-outage", "--yes")):
        result = run_cli(*command, home=home, env=env)
        assert result.code == 2, result.output
        assert "channel 'team' setting 'urls.1': not a URL Apprise knows: check its scheme" in result.stderr
        assert "svc-token-7d8e9f0a" not in result.output and "nonsense://" not in result.output
    assert webhook_sink.requests() == []


def test_validate_without_the_variables_still_checks_the_urls_it_can_read(home: Path,
                                                                          webhook_sink: WebhookSink) -> None:
    use_apprise(home, [json_url(webhook_sink), "nonsense://literal-token-3c4d@example.org/x"])
    result = run_cli("validate", home=home, env={})
    assert result.code == 2, result.output
    assert "error: channel 'team': setting 'urls.1': not a URL Apprise knows" in result.stderr
    assert "literal-token-3c4d" not in result.output
    assert "warning: channel 'team': $HOOK_PASSWORD not set" in " ".join(result.stdout.split())


def test_check_names_each_url_by_scheme_and_host_and_sends_nothing(home: Path, webhook_sink: WebhookSink) -> None:
    use_apprise(home, [json_url(webhook_sink), ntfy_url(webhook_sink)])
    result = run_cli("channels", "--check", "--json", home=home, env=ENV)
    assert result.code == 0, result.output
    channel = {c["name"]: c for c in json.loads(result.stdout)["channels"]}["team"]
    where = f"127.0.0.1:{webhook_sink.port}"
    assert channel["check"] == {"ok": True, "detail": f"json://{where} (JSON), ntfy://{where} (ntfy); Apprise cannot "
                                                      "check a service without notifying it, so nothing was sent"}
    assert channel["settings"]["urls"] == str([f"json://{where}", f"ntfy://{where}"])
    assert channel["limits"] == "body: characters (ntfy) ≤ 7800"
    assert webhook_sink.requests() == []



def test_secrets_in_urls_never_appear_in_output_or_ledger(home: Path, webhook_sink: WebhookSink) -> None:
    use_apprise(home, [json_url(webhook_sink), ntfy_url(webhook_sink), "tgram://${TELEGRAM_BOT}/-100123"],
                extra="    retry_for: 1s\n")
    env = {**ENV, "TELEGRAM_BOT": "123456789:AAHsecretBotToken42"}
    webhook_sink.script("hook", Reply(500, body=f"echo {ENV['HOOK_PASSWORD']}"))
    results = [run_cli("channels", "--check", home=home, env=env), run_cli("channels", "--json", home=home, env=env),
               run_cli("validate", home=home, env=env), run_cli("render", "whatsapp-outage", home=home, env=env)]
    # Telegram is not reachable from here: its URL fails, is retried, and is reported by its masked host.
    results.append(run_cli("--debug", "trigger", "whatsapp-outage", "--yes", "--detected-at", "-40m", home=home,
                           env=env))
    results.append(run_cli("status", "--json", home=home, env=env))
    assert results[4].code == 1 and "tgram://1...2 failed" in results[4].output
    seen = "\n".join(r.output for r in results) + ledger_text(home)
    for value in (*ENV.values(), "AAHsecretBotToken42", "123456789:"):
        assert value not in seen
    assert "apprise" not in "".join(r.stderr for r in results[:4]).lower()


def test_apprises_own_logging_never_reaches_the_process_logs(caplog: pytest.LogCaptureFixture,
                                                             webhook_sink: WebhookSink, tmp_path: Path) -> None:
    url = f"json://ops:{ENV['HOOK_PASSWORD']}@127.0.0.1:{webhook_sink.port}/hook"
    secrets.register(ENV["HOOK_PASSWORD"])
    webhook_sink.script("hook", Reply(500, body="boom"))
    caplog.set_level(logging.DEBUG)
    publisher = ApprisePublisher("team", AppriseConfig.model_validate({"type": "apprise", "urls": [url]}),
                                 ChannelContext(tmp_path, ["en"]))
    message = Message(lang="en", blocks={"title": "Down", "body": "WhatsApp is down."})
    delivery = Delivery(key="k1", incident_id="i", playbook_id="p", phase="investigating", channel="team",
                        lang="en", message=message, deadline=datetime.now(UTC))
    failure = asyncio.run(publisher.publish(delivery))
    assert failure == Failure(f"json://127.0.0.1:{webhook_sink.port} failed (HTTP 500)", retryable=True)
    receipt = asyncio.run(publisher.publish(delivery))
    assert receipt == Receipt(note="1 URL(s) notified")
    assert [r.name for r in caplog.records if r.name.startswith("apprise")] == []
    assert ENV["HOOK_PASSWORD"] not in caplog.text
