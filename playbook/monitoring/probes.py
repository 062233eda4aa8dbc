"""One look at a provider's health, as a Finding: its status page, our number's Cloud API health, a health URL.

A probe never raises for the provider's trouble: a timeout, a refused connection, an answer it cannot read are
failed findings saying so. Only the playbook's own mistake (a ${NAME} not set) is a PlaybookError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from playbook import secrets
from playbook.errors import ConfigError, did_you_mean
from playbook.home.monitors import Monitor
from playbook.monitoring.settings import resolved
from playbook.textsafe import text_only
from playbook.timeparse import format_duration

# Cloud API's word for a number that can send; LIMITED (a quality or messaging limit) and BLOCKED are down:
# a limited number may not reach the customers the first notice is for.
AVAILABLE = "AVAILABLE"


@dataclass(frozen=True)
class Finding:
    """What one probe saw. `readable` is False when the provider's answer could not be read at all (no answer,
    an error instead of health, a page without the component): a rehearsal fails on those, not on "down"."""

    ok: bool
    detail: str
    readable: bool = True


class _Unreadable(Exception):
    """The answer is not what the provider sends: said in the failed finding."""


async def probe(monitor: Monitor, env: Mapping[str, str], client: httpx.AsyncClient) -> Finding:
    """Look once at what `monitor` watches; its ${NAME} settings from `env`, masked in the finding."""
    monitor = resolved(monitor, env)
    seconds = monitor.timeout.total_seconds()
    try:
        async with asyncio.timeout(seconds):
            if monitor.type == "statuspage":
                finding = await _statuspage(monitor, client, seconds)
            elif monitor.type == "whatsapp":
                finding = await _whatsapp(monitor, client, seconds)
            else:
                finding = await _http(monitor, client, seconds)
    except (TimeoutError, httpx.TimeoutException):
        finding = Finding(False, f"no answer within {format_duration(monitor.timeout)}", readable=False)
    except httpx.HTTPError as exc:
        finding = Finding(False, f"cannot reach {_where(monitor)}: {type(exc).__name__}", readable=False)
    except _Unreadable as exc:
        finding = Finding(False, str(exc), readable=False)
    except httpx.InvalidURL as exc:
        raise ConfigError(secrets.redact(f"monitor '{monitor.name}': {exc}")) from None
    # The detail quotes the provider: it goes into alerts (chats, mail, JSON) and the ledger, on one line.
    return Finding(finding.ok, secrets.excerpt(text_only(finding.detail)), finding.readable)


def _where(monitor: Monitor) -> str:
    if monitor.type == "whatsapp":
        return f"{monitor.api_base}/{monitor.phone_number_id}"
    return str(monitor.url)


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise _Unreadable(f"HTTP {response.status_code} from {response.url}: not {what} (not JSON)") from None


async def _statuspage(monitor: Monitor, client: httpx.AsyncClient, seconds: float) -> Finding:
    assert monitor.url is not None and monitor.component is not None
    response = await client.get(monitor.url, timeout=seconds, follow_redirects=True)
    if response.status_code != 200:
        raise _Unreadable(f"HTTP {response.status_code} from {monitor.url}: no status page summary")
    data = _json(response, "a status page summary")
    components = data.get("components") if isinstance(data, dict) else None
    if not isinstance(components, list):
        raise _Unreadable(f"{monitor.url} has no 'components' list: not a Statuspage summary.json")
    statuses = {str(c.get("name")): str(c.get("status")) for c in _items(components)}
    status = statuses.get(monitor.component)
    if status is None:
        raise _Unreadable(f"no component '{monitor.component}' on {monitor.url}"
                          f"{did_you_mean(monitor.component, statuses)}")
    return Finding(status not in monitor.down_when, f"{monitor.component}: {status}")


async def _whatsapp(monitor: Monitor, client: httpx.AsyncClient, seconds: float) -> Finding:
    number = monitor.phone_number_id
    response = await client.get(f"{monitor.api_base.rstrip('/')}/{number}", params={"fields": "health_status"},
                                headers={"Authorization": f"Bearer {monitor.access_token}"}, timeout=seconds)
    data = _json(response, "the Cloud API's answer")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        raise _Unreadable(f"Cloud API error {error.get('code')} (HTTP {response.status_code}) for phone number "
                          f"{number}: {error.get('message')}")
    health = data.get("health_status") if isinstance(data, dict) else None
    if response.status_code != 200 or not isinstance(health, dict) or "can_send_message" not in health:
        raise _Unreadable(f"HTTP {response.status_code} for phone number {number}: no health_status in the answer")
    can_send = str(health["can_send_message"])
    detail = f"phone number {number}: can_send_message {can_send}"
    reasons = [str(e.get("error_description")) for entity in _items(health.get("entities"))
               for e in _items(entity.get("errors")) if e.get("error_description")]
    if reasons and can_send != AVAILABLE:
        detail += f" ({reasons[0]})"
    return Finding(can_send == AVAILABLE, detail)


def _items(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list; nothing when the provider sent something else."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


async def _http(monitor: Monitor, client: httpx.AsyncClient, seconds: float) -> Finding:
    assert monitor.url is not None
    response = await client.get(monitor.url, timeout=seconds)
    expect = monitor.expect
    if response.status_code != expect.status:
        return Finding(False, f"HTTP {response.status_code} from {monitor.url} (expected {expect.status})")
    if expect.contains is not None and expect.contains not in response.text:
        return Finding(False, f"HTTP {response.status_code} from {monitor.url} without {expect.contains!r}")
    return Finding(True, f"HTTP {response.status_code} from {monitor.url}")
