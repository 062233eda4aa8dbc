"""`type: pager`: pages the on-call team through the Pager API, once per language, deduplicated by key.

A complete third-party channel for crisis-playbook in one file. The Pager API is made up for the example:

    POST {api_base}/v1/pages             {"service", "summary", "details", "urgency", "dedup_key"} -> 201 {"id", "url"}
    GET  {api_base}/v1/services/{name}   -> 200 {"name"}
    Authorization: Bearer {api_key}; 401 for a wrong key, 429 or 5xx when it is busy.

The package's pyproject.toml registers the class under the entry-point group `playbook.publishers`;
crisis-playbook imports it only when a channel of `type: pager` is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import AnyHttpUrl, Field, SecretStr

from playbook import ChannelConfig, CheckResult, Delivery, Failure, Limit, Measure, Publisher, Receipt

# The Pager API refuses a summary longer than this (it is read on a phone's lock screen).
SUMMARY_LIMIT = 280


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


class PagerPublisher(Publisher[PagerConfig]):
    """Opens one page per language with the `short` block as its summary and `title` as its details."""

    Config = PagerConfig
    blocks = ("short",)
    optional_blocks = ("title",)
    deduplicates = True
    typical_latency = 0.5
    idempotency = "each page carries the delivery key as dedup_key: the Pager API opens one page per key"

    _client: httpx.AsyncClient | None = None

    def limits(self) -> Mapping[str, Limit]:
        return {"short": SummaryLength()}

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=str(self.config.api_base), timeout=self.config.timeout.total_seconds(),
            headers={"authorization": f"Bearer {self.config.api_key.get_secret_value()}"},
        )

    async def open(self) -> None:
        self._client = self._new_client()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        if self._client is None:
            await self.open()
        assert self._client is not None
        page = {
            "service": self.config.service, "summary": delivery.message.block("short"),
            "details": delivery.message.block("title"), "urgency": self.config.urgency, "dedup_key": delivery.key,
        }
        try:
            response = await self._client.post("/v1/pages", json=page)
        except httpx.HTTPError as exc:
            return Failure(f"cannot reach the Pager API: {type(exc).__name__}", retryable=True)
        if response.is_success:
            answer: Any = response.json()
            return Receipt(remote_id=str(answer.get("id")), url=answer.get("url"))
        return self._failure(response)

    def _failure(self, response: httpx.Response) -> Failure:
        """Busy is retried; a refused key or a bad page is not, and says what to fix."""
        status = response.status_code
        if status == 429 or status >= 500:
            return Failure(f"the Pager API is busy (HTTP {status})", retryable=True)
        if status in (401, 403):
            return Failure(f"the Pager API refused the key (HTTP {status}): set 'api_key' of channel "
                           f"'{self.name}' to a key with the right to page", retryable=False)
        return Failure(f"the Pager API refused the page (HTTP {status})", retryable=False)

    async def check(self) -> CheckResult:
        async with self._new_client() as client:
            try:
                response = await client.get(f"/v1/services/{quote(self.config.service, safe='')}")
            except httpx.HTTPError as exc:
                return CheckResult(False, f"cannot reach the Pager API: {type(exc).__name__}")
        if not response.is_success:
            return CheckResult(False, self._failure(response).reason)
        return CheckResult(True, f"service '{self.config.service}' found; nothing was paged")
