"""What the team-briefing channels (Slack, Teams) share: the webhook, the facts of the post and its links.

A briefing channel runs after the post's other channels (`Publisher.briefing`), so its message can link to
every public post that has just gone out, and say which channels failed.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator

from playbook.ledger.statuses import DeliveryStatus
from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Link, Receipt
from playbook.publishers.http import HttpPublisher, client, failure_from_exception, host_of

# Beside a link, these go without saying; any other status is shown.
DELIVERED = (DeliveryStatus.SENT, DeliveryStatus.ALREADY_SENT)


class BriefingConfig(ChannelConfig):
    url: SecretStr = Field(description="The incoming webhook's URL: a secret, so write ${NAME}")

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # The URL is a secret: the message says what is expected, never what was given.
            raise ValueError("not a webhook URL: expected https://... as the chat app gave it")
        return value


@dataclass(frozen=True)
class ChannelLinks:
    """One other channel of the post: each language's status and, when it has one, its public link."""

    channel: str
    posts: tuple[Link, ...]


def links_of(delivery: Delivery) -> list[ChannelLinks]:
    """The post's other deliveries (`Delivery.links`), grouped by channel in the order they were planned."""
    grouped: dict[str, list[Link]] = {}
    for link in delivery.links:
        grouped.setdefault(link.channel, []).append(link)
    return [ChannelLinks(channel, tuple(posts)) for channel, posts in grouped.items()]


def facts(delivery: Delivery) -> list[tuple[str, str]]:
    """What the team needs to place the message: the incident, the phase, the language; a drill says so."""
    found = [("Incident", delivery.incident_id), ("Phase", delivery.phase), ("Language", delivery.lang)]
    if delivery.drill:
        found.append(("Drill", "yes: a rehearsal, not a real incident"))
    return found


class BriefingPublisher(HttpPublisher[BriefingConfig]):
    """Posts the title, body, facts and links of the post to a team chat's incoming webhook."""

    blocks = ("title", "body")
    briefing = True
    typical_latency = 0.5
    idempotency = ("incoming webhooks take no idempotency key: a briefing the chat posted just before the process "
                   "stopped, not yet recorded, is posted again by resume (the team sees it twice)")
    # The chat app's name in messages, and the URL shape its webhooks have.
    provider: ClassVar[str]
    shape: ClassVar[re.Pattern[str]]
    shape_hint: ClassVar[str]

    @property
    def url(self) -> str:
        return self.config.url.get_secret_value()

    @property
    def host(self) -> str:
        return host_of(self.url)

    def looks_right(self) -> bool:
        """The URL has the path and query of this app's webhooks (the host may be a relay, or a test's fake)."""
        parts = urlsplit(self.url)
        return bool(self.shape.search(f"{parts.path}?{parts.query}"))

    def warnings(self) -> list[str]:
        if self.looks_right():
            return []
        return [f"setting 'url' does not look like a {self.provider} incoming webhook ({self.shape_hint})"]

    async def post(self, payload: dict[str, Any]) -> httpx.Response | Failure:
        """POST `payload` as JSON to the webhook; network trouble becomes a retryable Failure naming the host."""
        http = await self.http()
        try:
            return await http.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            return failure_from_exception(exc, self.host)

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        answer = await self.post(self.payload(delivery))
        return answer if isinstance(answer, Failure) else self.outcome(answer)

    async def reachable(self) -> CheckResult:
        """Whether the webhook's host answers HTTP at all: a GET of its root, which posts nothing."""
        parts = urlsplit(self.url)
        async with client(self.config.timeout) as probe:
            try:
                response = await probe.get(f"{parts.scheme}://{parts.netloc}/")
            except httpx.HTTPError as exc:
                return CheckResult(False, failure_from_exception(exc, self.host).reason)
        return CheckResult(True, f"{self.host} answers (HTTP {response.status_code} to GET /)")

    def shape_note(self) -> str:
        return "" if self.looks_right() else f"; the URL does not look like a {self.provider} webhook"

    @abstractmethod
    def payload(self, delivery: Delivery) -> dict[str, Any]:
        """The JSON this app's webhook takes for the delivery."""

    @abstractmethod
    def outcome(self, response: httpx.Response) -> Receipt | Failure:
        """What the webhook's answer means: posted, worth another try, or refused for good."""
