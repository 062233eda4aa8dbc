"""`type: webhook`: a JSON POST of the incident, phase, language and rendered blocks."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import AnyHttpUrl, Field, SecretStr

from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Receipt
from playbook.publishers.http import HttpPublisher, client, failure_from_exception, failure_from_response
from playbook.publishers.limits import Limit


class WebhookConfig(ChannelConfig):
    url: AnyHttpUrl
    secret: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class WebhookPublisher(HttpPublisher[WebhookConfig]):
    """Posts every rendered block as JSON; the receiver may drop repeats by the Idempotency-Key header."""

    Config = WebhookConfig
    blocks = ()
    optional_blocks = ("title", "short", "body", "html")
    deduplicates = True
    idempotency = "sends the Idempotency-Key header: a receiver that honours it never sees a repeat"

    def limits(self) -> Mapping[str, Limit]:
        return {}

    def payload(self, delivery: Delivery) -> dict[str, Any]:
        return {
            "incident": delivery.incident_id,
            "playbook": delivery.playbook_id,
            "phase": delivery.phase,
            "lang": delivery.lang,
            "channel": delivery.channel,
            "drill": delivery.drill,
            "idempotency_key": delivery.key,
            "blocks": dict(delivery.message.blocks),
        }

    def request_headers(self, body: bytes, key: str) -> dict[str, str]:
        headers = {"content-type": "application/json", "idempotency-key": key, **self.config.headers}
        if self.config.secret is not None:
            digest = hmac.new(self.config.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
            headers["x-playbook-signature"] = f"sha256={digest}"
        return headers

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        http = await self.http()
        body = json.dumps(self.payload(delivery), ensure_ascii=False).encode()
        try:
            response = await http.post(
                str(self.config.url), content=body, headers=self.request_headers(body, delivery.key)
            )
        except httpx.HTTPError as exc:
            return failure_from_exception(exc)
        if response.is_success:
            return _receipt_from(response)
        return failure_from_response(response, "check the webhook URL and secret")

    async def check(self) -> CheckResult:
        # Webhooks rarely answer GET; any HTTP answer proves the host is there, without posting anything.
        async with client(self.config.timeout) as probe:
            try:
                response = await probe.request("HEAD", str(self.config.url))
            except httpx.HTTPError as exc:
                return CheckResult(False, failure_from_exception(exc).reason)
        if response.status_code in (401, 403):
            return CheckResult(False, f"the endpoint refuses us (HTTP {response.status_code})")
        return CheckResult(True, f"reachable (HTTP {response.status_code})")


def _receipt_from(response: httpx.Response) -> Receipt:
    remote_id = url = None
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        remote_id = str(data["id"]) if data.get("id") is not None else None
        url = str(data["url"]) if isinstance(data.get("url"), str) else None
    return Receipt(remote_id=remote_id, url=url)
