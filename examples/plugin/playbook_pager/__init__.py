"""`type: pager`: pages the on-call team through the Pager API, once per language, deduplicated by key.

A complete third-party channel for crisis-playbook in one file. The Pager API is made up for the example:

    POST {api_base}/v1/pages             {"service", "summary", "details", "urgency", "dedup_key"} -> 201 {"id", "url"}
    GET  {api_base}/v1/services/{name}   -> 200 {"name"}
    Authorization: Bearer {api_key}; 401 for a wrong key, 429 or 5xx when it is busy.

The package's pyproject.toml registers the class under the entry-point group `playbook.publishers`;
crisis-playbook imports it only when a channel of `type: pager` is used. HttpPublisher gives it one HTTP
client per run; failure_from_response and failure_from_exception say which answers are worth another try.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import AnyHttpUrl, Field, SecretStr

from playbook import (
    ChannelConfig,
    CheckResult,
    Delivery,
    Failure,
    HttpPublisher,
    Limit,
    Measure,
    Receipt,
    failure_from_exception,
    failure_from_response,
)

# The Pager API refuses a summary longer than this (it is read on a phone's lock screen).
SUMMARY_LIMIT = 280
# How errors name the server: the API, not its URL.
API = "the Pager API"


@dataclass(frozen=True)
class SummaryLength:
    """The summary's length in characters, against the Pager API's limit."""

    limit: int = SUMMARY_LIMIT
    name: str = "pager summary characters"

    def measure(self, text: str) -> Measure:
        return Measure(len(text), self.limit, "characters")


class PagerConfig(ChannelConfig):
    """The settings of a pager channel; unknown keys are refused with the key named."""

    api_key: SecretStr
    service: str = Field(min_length=1, description="The service (on-call rota) to page")
    urgency: Literal["high", "low"] = "high"
    api_base: AnyHttpUrl = Field(default=AnyHttpUrl("https://api.pager.example"),
                                 description="Where the Pager API is")


class PagerPublisher(HttpPublisher[PagerConfig]):
    """Opens one page per language with the `short` block as its summary and `title` as its details."""

    Config = PagerConfig
    blocks = ("short",)
    optional_blocks = ("title",)
    deduplicates = True
    typical_latency = 0.5
    idempotency = "each page carries the delivery key as dedup_key: the Pager API opens one page per key"

    def limits(self) -> Mapping[str, Limit]:
        return {"short": SummaryLength()}

    def client_options(self) -> dict[str, Any]:
        return {"base_url": str(self.config.api_base),
                "headers": {"authorization": f"Bearer {self.config.api_key.get_secret_value()}"}}

    @property
    def key_hint(self) -> str:
        """What to do when the API refuses the key (HTTP 401 or 403)."""
        return f"set 'api_key' of channel '{self.name}' to a key with the right to page"

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        page = {
            "service": self.config.service, "summary": delivery.message.block("short"),
            "details": delivery.message.block("title"), "urgency": self.config.urgency, "dedup_key": delivery.key,
        }
        http = await self.http()
        try:
            response = await http.post("/v1/pages", json=page)
        except httpx.HTTPError as exc:
            return failure_from_exception(exc, API)
        if response.is_success:
            answer: Any = response.json()
            return Receipt(remote_id=str(answer.get("id")), url=answer.get("url"))
        # 429, 5xx and 408 are retried (after Retry-After when given); a refused key or page is not.
        return failure_from_response(response, self.key_hint)

    async def check(self) -> CheckResult:
        http = await self.http()
        try:
            response = await http.get(f"/v1/services/{quote(self.config.service, safe='')}")
        except httpx.HTTPError as exc:
            return CheckResult(False, failure_from_exception(exc, API).reason)
        finally:
            await self.close()
        if not response.is_success:
            return CheckResult(False, failure_from_response(response, self.key_hint).reason)
        return CheckResult(True, f"service '{self.config.service}' found; nothing was paged")
