"""`type: slack`: the team's briefing in a Slack channel, through an incoming webhook, as Block Kit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from playbook import secrets
from playbook.channels.briefing import DELIVERED, BriefingConfig, BriefingPublisher, facts, links_of
from playbook.ledger.statuses import DeliveryStatus
from playbook.publishers.base import CheckResult, Delivery, Failure, Receipt
from playbook.publishers.http import failure_from_response
from playbook.publishers.limits import Characters, Limit, Measure

# Block Kit's limits: a header's plain text, and the mrkdwn text of one section.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000

# Slack's error words on a webhook that will never work again, with what the user must do.
_NEW_WEBHOOK = "make a new incoming webhook for the Slack channel and put its URL in setting 'url' of channel '{name}'"
_REFUSALS = {
    "invalid_token": ("the webhook was revoked or its Slack app removed", _NEW_WEBHOOK),
    "no_service": ("the webhook was disabled or deleted", _NEW_WEBHOOK),
    "no_team": ("the workspace of the webhook is gone", _NEW_WEBHOOK),
    "team_disabled": ("the workspace of the webhook is disabled", _NEW_WEBHOOK),
    "channel_not_found": ("the webhook's channel was deleted", _NEW_WEBHOOK),
    "channel_is_archived": ("the webhook's channel is archived", "unarchive it, or " + _NEW_WEBHOOK),
    "action_prohibited": ("a workspace admin restricts posting in the webhook's channel",
                          "ask a Slack admin to allow the app to post there"),
    "posting_to_general_channel_denied": ("only admins may post in the webhook's channel",
                                          "ask a Slack admin, or " + _NEW_WEBHOOK),
}


def escape(text: str) -> str:
    """Text for Slack mrkdwn: &, < and > are control characters there (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class EscapedCharacters:
    """Characters as Slack receives them in mrkdwn, after escaping: `&` counts 5, `<` and `>` 4."""

    limit: int
    name: str = "characters (escaped for Slack)"

    def measure(self, text: str) -> Measure:
        return Measure(len(escape(text.strip())), self.limit, "characters")


class SlackPublisher(BriefingPublisher):
    """A header (title), the incident's facts, the body, then the link or status of every other channel's post."""

    Config = BriefingConfig
    provider = "Slack"
    shape = re.compile(r"^/services/T\w+/B\w+/\w+")
    shape_hint = "https://hooks.slack.com/services/T.../B.../..."
    # Slack's documented pace for incoming webhooks: one message a second, short bursts allowed.
    rate_limit = (1, timedelta(seconds=1))

    def limits(self) -> Mapping[str, Limit]:
        return {"title": Characters(HEADER_LIMIT), "body": EscapedCharacters(SECTION_LIMIT)}

    def payload(self, delivery: Delivery) -> dict[str, Any]:
        title = " ".join(delivery.message.block("title").split())
        body = delivery.message.block("body").strip()
        blocks: list[dict[str, Any]] = []
        if title:
            blocks.append({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}})
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": " · ".join(f"*{name}:* {escape(value)}" for name, value in facts(delivery))}]})
        if body:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": escape(body)}})
        lines = [f"• *{escape(c.channel)}*: " + " · ".join(_post(p.lang, p.status, p.url) for p in c.posts)
                 for c in links_of(delivery)]
        if lines:
            blocks.append({"type": "divider"})
            blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": text}}
                          for text in _sections(["*On the other channels*", *lines]))
        fallback = f"{title or delivery.phase} ({delivery.incident_id}, {delivery.phase})"
        return {"text": escape(fallback), "blocks": blocks, "unfurl_links": False, "unfurl_media": False}

    def outcome(self, response: httpx.Response) -> Receipt | Failure:
        if response.is_success:
            return Receipt(note=f"Slack answered {secrets.excerpt(response.text, 40) or response.status_code}")
        word = response.text.strip()[:100]
        if response.status_code == 429 or response.status_code >= 500:
            return failure_from_response(response, "")
        if word in _REFUSALS:
            why, todo = _REFUSALS[word]
            return Failure(f"Slack refused the webhook (HTTP {response.status_code} {word}): {why}; "
                           f"{todo.format(name=self.name)}", retryable=False)
        return Failure(f"Slack refused the message (HTTP {response.status_code} {word or 'without a reason'})",
                       retryable=False)

    async def check(self) -> CheckResult:
        # An empty message is refused (no_text) once Slack has accepted the webhook itself: that proves the
        # webhook lives without posting anything, which a GET cannot.
        try:
            answer = await self.post({})
        finally:
            await self.close()
        if isinstance(answer, Failure):
            return CheckResult(False, answer.reason)
        word = answer.text.strip()[:100]
        if answer.status_code == 400:
            return CheckResult(True, f"Slack knows the webhook: it answered '{word}' to an empty message, which "
                                     f"posts nothing{self.shape_note()}")
        if answer.is_success:
            return CheckResult(True, f"the webhook answered HTTP {answer.status_code} to an empty message"
                                     f"{self.shape_note()}")
        outcome = self.outcome(answer)
        reason = outcome.reason if isinstance(outcome, Failure) else ""
        return CheckResult(False, secrets.redact(reason))


def _post(lang: str, status: DeliveryStatus, url: str | None) -> str:
    if url is None:
        return f"{lang}: {status}"
    shown = "" if status in DELIVERED else f" ({status})"
    return f"<{escape(url).replace('|', '%7C')}|{lang}>{shown}"


def _sections(lines: list[str]) -> list[str]:
    """Lines gathered into section texts of at most SECTION_LIMIT characters each."""
    sections: list[str] = []
    for line in lines:
        line = line[:SECTION_LIMIT]
        if sections and len(sections[-1]) + 1 + len(line) <= SECTION_LIMIT:
            sections[-1] += "\n" + line
        else:
            sections.append(line)
    return sections
