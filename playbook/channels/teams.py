"""`type: teams`: the team's briefing in a Microsoft Teams channel, as an Adaptive Card posted to a webhook.

The webhook is a Workflows (Power Automate) trigger, "When a Teams webhook request is received", or an older
Office 365 connector: both take the same `{"type": "message", "attachments": [card]}` body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from playbook import secrets
from playbook.channels.briefing import DELIVERED, BriefingConfig, BriefingPublisher, facts, links_of
from playbook.ledger.statuses import DeliveryStatus
from playbook.publishers.base import CheckResult, Delivery, Failure, Receipt
from playbook.publishers.http import failure_from_response, json_of
from playbook.publishers.limits import Limit, Measure

CARD = "application/vnd.microsoft.card.adaptive"
# Teams refuses a message over 28 KB; the card's frame, facts and links take the rest.
BODY_BYTES = 20_000
TITLE_BYTES = 1_000
# Office 365 connectors answer 200 and put Teams' own refusal in the text.
_WRAPPED = re.compile(r"returned HTTP error (\d{3})")


@dataclass(frozen=True)
class Utf8Bytes:
    """Bytes of the text in UTF-8, as Teams weighs a message against its 28 KB limit."""

    limit: int
    name: str = "UTF-8 bytes"

    def measure(self, text: str) -> Measure:
        return Measure(len(text.strip().encode()), self.limit, "bytes")


class TeamsPublisher(BriefingPublisher):
    """The title, the incident's facts, the body line by line, then the link or status of every other post."""

    Config = BriefingConfig
    provider = "Teams"
    shape = re.compile(r"/workflows/\w+/triggers/[\w.-]+/paths/invoke\?(.*&)?sig=|^/webhookb2/")
    shape_hint = "the URL of a Workflows trigger 'When a Teams webhook request is received'"

    def limits(self) -> Mapping[str, Limit]:
        return {"title": Utf8Bytes(TITLE_BYTES), "body": Utf8Bytes(BODY_BYTES)}

    def payload(self, delivery: Delivery) -> dict[str, Any]:
        title = " ".join(delivery.message.block("title").split())
        body: list[dict[str, Any]] = []
        if title:
            body.append({"type": "TextBlock", "text": title, "size": "Large", "weight": "Bolder", "wrap": True})
        body.append({"type": "FactSet", "facts": [{"title": name, "value": value}
                                                  for name, value in facts(delivery)]})
        # One block per line: Teams' Markdown would join single line breaks into one paragraph.
        gap = True
        for line in delivery.message.block("body").strip().splitlines():
            if not line.strip():
                gap = True
                continue
            body.append({"type": "TextBlock", "text": line, "wrap": True, "spacing": "Medium" if gap else "None"})
            gap = False
        others = links_of(delivery)
        if others:
            body.append({"type": "TextBlock", "text": "On the other channels", "weight": "Bolder",
                         "separator": True, "spacing": "Large", "wrap": True})
            body.extend({"type": "TextBlock", "wrap": True, "spacing": "None",
                         "text": f"**{c.channel}**: " + " · ".join(_post(p.lang, p.status, p.url) for p in c.posts)}
                        for c in others)
        card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                "version": "1.4", "msteams": {"width": "Full"}, "body": body}
        return {"type": "message", "attachments": [{"contentType": CARD, "contentUrl": None, "content": card}]}

    def outcome(self, response: httpx.Response) -> Receipt | Failure:
        wrapped = _WRAPPED.search(response.text) if response.is_success else None
        if wrapped is not None:
            return self._wrapped(int(wrapped.group(1)))
        if response.is_success:
            if response.status_code == 202:
                return Receipt(note="accepted by the workflow (HTTP 202), which posts the card in Teams")
            return Receipt(note=f"Teams answered HTTP {response.status_code}")
        code, said = _error(response)
        status = response.status_code
        if status == 429 or status >= 500:
            return failure_from_response(response, "", detail=f"{code}: {said}" if code else None)
        where = f"setting 'url' of channel '{self.name}'"
        if status in (401, 403):
            return Failure(f"Teams refused the webhook URL (HTTP {status} {code}): copy the URL of the workflow's "
                           f"trigger 'When a Teams webhook request is received' again and put it in {where}",
                           retryable=False)
        if status == 404:
            return Failure(f"the Teams workflow of the webhook does not exist any more (HTTP 404 {code}): create it "
                           f"again in the Workflows app ('Post to a channel when a webhook request is received') and "
                           f"put its URL in {where}", retryable=False)
        detail = f"{code}: {said}" if code else said
        return Failure(f"Teams refused the card (HTTP {status}){f': {detail}' if detail else ''}", retryable=False)

    def _wrapped(self, status: int) -> Failure:
        if status == 429 or status >= 500:
            return Failure(f"Teams answered HTTP {status} through the connector (in a 200 answer)", retryable=True)
        if status == 413:
            return Failure("Teams refused the card as too large (HTTP 413 through the connector): shorten the body",
                           retryable=False)
        return Failure(f"Teams refused the card (HTTP {status} through the connector)", retryable=False)

    async def check(self) -> CheckResult:
        reached = await self.reachable()
        if not reached.ok:
            return reached
        return CheckResult(True, f"{reached.detail}{self.shape_note()}; not verified: that the workflow is on and "
                                 "posts to its channel (a Teams webhook cannot be called without posting)")


def _post(lang: str, status: DeliveryStatus, url: str | None) -> str:
    if url is None:
        return f"{lang}: {status}"
    shown = "" if status in DELIVERED else f" ({status})"
    return f"[{lang}]({url.replace(')', '%29')}){shown}"


def _error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of a Workflows error answer, {"error": {"code": ..., "message": ...}}; else ("", text)."""
    data = json_of(response)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or ""), secrets.excerpt(str(error.get("message") or ""))
    return "", secrets.excerpt(response.text)
