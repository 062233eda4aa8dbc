"""Slack and Teams briefings: sent after the post's public channels, with their links, to fake webhooks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import Result, ledger_text, run_cli, write
from tests.fakes.http import Reply, WebhookSink
from tests.fakes.provider import Answer, add_channel
from tests.fakes.webhooks import CONNECTOR_THROTTLED, FakeSlack, FakeTeams

SLACK_REVOKED = ("Slack refused the webhook (HTTP 403 invalid_token): the webhook was revoked or its Slack app "
                 "removed; make a new incoming webhook for the Slack channel and put its URL in setting 'url' of "
                 "channel 'team-slack'")
TEAMS_REFUSED = ("Teams refused the webhook URL (HTTP 401 DirectApiInvalidAuthorizationSignature): copy the URL of "
                 "the workflow's trigger 'When a Teams webhook request is received' again and put it in setting "
                 "'url' of channel 'team-teams'")
EN_TITLE = "WhatsApp messages delayed: you can still reach us by email, phone and chat"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def teams() -> Iterator[FakeTeams]:
    with FakeTeams() as fake:
        yield fake


def use_briefings(home: Path, sink: WebhookSink, slack_url: str | None = None, teams_url: str | None = None,
                  **settings: Any) -> None:
    """Add a public `partners` webhook (whose receipts carry URLs), then Slack in English and Teams in French."""
    add_channel(home, "partners", {"type": "webhook", "url": sink.url("partners")})
    if slack_url is not None:
        add_channel(home, "team-slack", {"type": "slack", "url": "${SLACK_WEBHOOK_URL}", "languages": ["en"],
                                         **settings}, env={"SLACK_WEBHOOK_URL": slack_url})
    if teams_url is not None:
        add_channel(home, "team-teams", {"type": "teams", "url": "${TEAMS_WEBHOOK_URL}", "languages": ["fr"],
                                         **settings}, env={"TEAMS_WEBHOOK_URL": teams_url})


def trigger(home: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    result = run_cli("trigger", "whatsapp-outage", "--yes", "--json", *args, home=home)
    return result, json.loads(result.stdout) if result.stdout.strip() else {}


def delivery(data: dict[str, Any], channel: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [d for d in data["deliveries"] if d["channel"] == channel]
    assert len(found) == 1, found
    return found[0]


def partner_urls(data: dict[str, Any]) -> dict[str, str]:
    return {d["lang"]: d["url"] for d in data["deliveries"] if d["channel"] == "partners"}



def texts(blocks: list[dict[str, Any]], kind: str) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == kind]


def test_slack_briefing_follows_the_public_posts_and_links_to_them(home: Path, webhook_sink: WebhookSink,
                                                                    slack: FakeSlack) -> None:
    webhook_sink.delay = 0.5
    use_briefings(home, webhook_sink, slack.hook())
    result, data = trigger(home)
    assert result.code == 0, result.output
    briefing = delivery(data, "team-slack")
    assert (briefing["status"], briefing["attempts"]) == ("sent", 1)
    [message] = slack.messages
    # Sent once the slowest public channel had answered, not alongside it.
    assert message.at >= max(r.at for r in webhook_sink.requests()) + 0.45
    blocks = message.payload["blocks"]
    assert texts(blocks, "header") == [EN_TITLE]
    [context] = [b["elements"][0]["text"] for b in blocks if b["type"] == "context"]
    assert context == f"*Incident:* {data['incident']} · *Phase:* investigating · *Language:* en"
    body, links = texts(blocks, "section")
    assert body.startswith("Since ") and body.endswith("The Example team")
    urls = partner_urls(data)
    assert links.splitlines() == [
        "*On the other channels*",
        "• *x*: fr: sent · en: sent",
        "• *website*: fr: sent · en: sent",
        "• *customers*: fr: sent · en: sent",
        f"• *partners*: <{urls['fr']}|fr> · <{urls['en']}|en>",
    ]
    assert message.payload["text"] == f"{EN_TITLE} ({data['incident']}, investigating)"


def test_teams_briefing_is_an_adaptive_card_with_the_same_content(home: Path, webhook_sink: WebhookSink,
                                                                   teams: FakeTeams) -> None:
    use_briefings(home, webhook_sink, teams_url=teams.workflow())
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert (delivery(data, "team-teams")["status"], delivery(data, "team-teams")["attempts"]) == ("sent", 1)
    [card] = [c.payload["attachments"][0]["content"] for c in teams.cards]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, fact_set, *rest = card["body"]
    assert title["text"].startswith("Messages WhatsApp perturbés") and title["weight"] == "Bolder"
    assert fact_set["facts"] == [{"title": "Incident", "value": data["incident"]},
                                 {"title": "Phase", "value": "investigating"}, {"title": "Language", "value": "fr"}]
    lines = [block["text"] for block in rest]
    assert lines[0].startswith("Depuis le ") and "L’équipe Example" in lines
    assert "- par e-mail\xa0: support@example.com" in lines
    urls = partner_urls(data)
    assert lines[-5:] == ["On the other channels", "**x**: fr: sent · en: sent", "**website**: fr: sent · en: sent",
                          "**customers**: fr: sent · en: sent",
                          f"**partners**: [fr]({urls['fr']}) · [en]({urls['en']})"]


def test_a_public_channel_that_failed_is_shown_failed_in_the_briefing(home: Path, webhook_sink: WebhookSink,
                                                                       slack: FakeSlack) -> None:
    use_briefings(home, webhook_sink, slack.hook())
    webhook_sink.script("partners", Reply(400), Reply(400))
    result, data = trigger(home)
    assert result.code == 1, result.output
    assert delivery(data, "team-slack")["status"] == "sent"
    links = texts(slack.messages[0].payload["blocks"], "section")[-1]
    assert links.splitlines()[-1] == "• *partners*: fr: failed · en: failed"


def test_slack_rate_limit_is_waited_out_as_retry_after_says(home: Path, webhook_sink: WebhookSink,
                                                            slack: FakeSlack) -> None:
    hook = slack.hook()
    use_briefings(home, webhook_sink, hook)
    slack.script(urlsplit(hook).path, Answer(429, "rate_limited", {"retry-after": "2"}))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert delivery(data, "team-slack")["attempts"] == 2
    limited, accepted = slack.requests(urlsplit(hook).path)
    assert accepted.at - limited.at >= 2.0 and len(slack.messages) == 1


def test_teams_throttling_hidden_in_a_200_answer_is_retried(home: Path, webhook_sink: WebhookSink,
                                                            teams: FakeTeams) -> None:
    workflow = teams.workflow()
    use_briefings(home, webhook_sink, teams_url=workflow)
    teams.script(urlsplit(workflow).path, Answer(200, CONNECTOR_THROTTLED))
    result, data = trigger(home)
    assert result.code == 0, result.output
    assert (delivery(data, "team-teams")["status"], delivery(data, "team-teams")["attempts"]) == ("sent", 2)
    assert len(teams.cards) == 1


def test_server_errors_are_retried_until_the_chat_accepts(home: Path, webhook_sink: WebhookSink, slack: FakeSlack,
                                                          teams: FakeTeams) -> None:
    hook, workflow = slack.hook(), teams.workflow()
    use_briefings(home, webhook_sink, hook, workflow)
    slack.script(urlsplit(hook).path, Answer(503, "service_unavailable"))
    teams.script(urlsplit(workflow).path, Answer(502, {"error": {"code": "BadGateway", "message": "Bad gateway"}}))
    result, data = trigger(home)
    assert result.code == 0, result.output
    for channel in ("team-slack", "team-teams"):
        assert (delivery(data, channel)["status"], delivery(data, channel)["attempts"]) == ("sent", 2)
    assert len(slack.messages) == 1 and len(teams.cards) == 1


def test_refused_webhooks_fail_fast_saying_what_to_do_while_public_channels_deliver(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack, teams: FakeTeams) -> None:
    hook = slack.hook()
    slack.revoke(hook)
    forged = re.sub(r"sig=[^&]+", "sig=forged0signature", teams.workflow())
    use_briefings(home, webhook_sink, hook, forged)
    result, data = trigger(home)
    assert result.code == 1, result.output
    assert (delivery(data, "team-slack")["attempts"], delivery(data, "team-slack")["error"]) == (1, SLACK_REVOKED)
    assert (delivery(data, "team-teams")["attempts"], delivery(data, "team-teams")["error"]) == (1, TEAMS_REFUSED)
    public = [d for d in data["deliveries"] if not d["channel"].startswith("team-")]
    assert len(public) == 8 and all(d["status"] == "sent" for d in public)


def replace_block(home: Path, template: str, block: str, text: str) -> None:
    path = home / "templates" / "whatsapp-outage" / template
    source = path.read_text(encoding="utf-8")
    write(path, re.sub(rf"(\{{% block {block} %\}}).*?(\{{% endblock %\}})", lambda m: m[1] + text + m[2], source,
                       count=1, flags=re.DOTALL))


@pytest.mark.parametrize(("channel", "template", "block", "text", "expected"), [
    ("team-slack", "investigating.en.j2", "title", "Delayed " * 20,
     "block 'title' is too long for channel 'team-slack': 159/150 characters"),
    ("team-slack", "investigating.en.j2", "body", "Fish & Chips " * 240,
     "block 'body' is too long for channel 'team-slack': 4079/3000 characters"),
    ("team-teams", "investigating.fr.j2", "body", "Désolés. " * 2100,
     "block 'body' is too long for channel 'team-teams': 23099/20000 bytes"),
])
def test_a_block_over_the_chat_limit_stops_everything_before_sending(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack, teams: FakeTeams, channel: str, template: str,
        block: str, text: str, expected: str) -> None:
    use_briefings(home, webhook_sink, slack.hook(), teams.workflow())
    replace_block(home, template, block, text)
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home)
    assert result.code == 2, result.output
    assert f"{expected}; nothing was sent" in result.stderr
    assert slack.received == [] and teams.received == [] and webhook_sink.requests() == []


def test_webhook_urls_never_appear_in_output_or_ledger(home: Path, webhook_sink: WebhookSink, slack: FakeSlack,
                                                       teams: FakeTeams) -> None:
    hook, workflow = slack.hook(), teams.workflow()
    use_briefings(home, webhook_sink, hook, workflow)
    results = [run_cli("channels", "--check", home=home), run_cli("channels", "--json", home=home),
               run_cli("validate", home=home)]
    first, data = trigger(home)
    results.append(first)
    slack.revoke(hook)
    teams.script(urlsplit(workflow).path, Answer(404, {"error": {"code": "WorkflowNotFound", "message": "gone"}}))
    results.append(run_cli("--debug", "update", data["incident"], "--phase", "identified", "--yes", home=home))
    results.append(run_cli("status", "--json", home=home))
    assert first.code == 0 and results[-2].code == 1, results[-2].output
    seen = "\n".join(r.output for r in results) + ledger_text(home)
    signature = workflow.partition("&sig=")[2]
    for secret in (urlsplit(hook).path.rpartition("/")[2], signature):
        assert secret and secret not in seen


def channel_checks(home: Path) -> tuple[Result, dict[str, dict[str, Any]]]:
    result = run_cli("channels", "--check", "--json", home=home)
    return result, {c["name"]: c for c in json.loads(result.stdout)["channels"]}


def test_slack_check_proves_the_webhook_without_posting(home: Path, webhook_sink: WebhookSink,
                                                        slack: FakeSlack) -> None:
    hook = slack.hook()
    use_briefings(home, webhook_sink, hook)
    result, listing = channel_checks(home)
    assert result.code == 0, result.output
    assert listing["team-slack"]["check"] == {"ok": True, "detail": (
        "Slack knows the webhook: it answered 'no_text' to an empty message, which posts nothing")}
    assert listing["team-slack"]["limits"] == ("title: characters ≤ 150, body: characters (escaped for Slack) "
                                               "≤ 3000")
    slack.revoke(hook)
    result, listing = channel_checks(home)
    assert result.code == 1
    assert listing["team-slack"]["check"] == {"ok": False, "detail": SLACK_REVOKED}
    assert slack.messages == []


def test_teams_check_reaches_the_host_and_says_what_it_cannot_verify(home: Path, webhook_sink: WebhookSink,
                                                                     teams: FakeTeams) -> None:
    use_briefings(home, webhook_sink, teams_url=teams.workflow())
    result, listing = channel_checks(home)
    assert result.code == 0, result.output
    port = urlsplit(teams.url).port
    assert listing["team-teams"]["check"] == {"ok": True, "detail": (
        f"127.0.0.1:{port} answers (HTTP 404 to GET /); not verified: that the workflow is on and posts to its "
        "channel (a Teams webhook cannot be called without posting)")}
    assert [(r.method, r.path) for r in teams.received] == [("GET", "/")] and teams.cards == []


def test_a_url_that_is_not_a_webhook_of_the_app_is_pointed_out(home: Path, webhook_sink: WebhookSink) -> None:
    use_briefings(home, webhook_sink, webhook_sink.url("not/a/slack/hook"))
    result = run_cli("validate", home=home)
    assert ("channel 'team-slack': setting 'url' does not look like a Slack incoming webhook "
            "(https://hooks.slack.com/services/T.../B.../...)") in result.output
