"""What HTTP answers mean for a delivery, shared by the publishers that speak HTTP through httpx."""

from __future__ import annotations

import functools
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from playbook import secrets
from playbook.publishers.base import C, Failure, Publisher
from playbook.publishers.base import host_of as host_of


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verified TLS context every HTTP channel shares: loading the CA bundle costs ~50 ms of CPU each time."""
    return httpx.create_ssl_context()


def client(timeout: timedelta, **options: Any) -> httpx.AsyncClient:
    """The HTTP client of a channel: the shared TLS context, the channel's timeout, no redirects followed
    (a redirected POST could publish twice, or somewhere else)."""
    return httpx.AsyncClient(timeout=timeout.total_seconds(), follow_redirects=False, verify=tls_context(),
                             **options)


def json_of(response: httpx.Response) -> Any:
    """The answer's JSON, or None when it has none (an HTML error page from a proxy, an empty body)."""
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def retry_at_in(seconds: float, now: datetime | None = None) -> datetime:
    """The moment `seconds` from now: for providers that say when to come back in the body, not a header."""
    return (now or datetime.now(UTC)) + timedelta(seconds=seconds)


def retry_at_from(headers: httpx.Headers, now: datetime | None = None) -> datetime | None:
    """When a 429 or 503 says to come back: Retry-After (seconds or a date) or X-RateLimit-Reset (epoch)."""
    now = now or datetime.now(UTC)
    value = headers.get("retry-after")
    if value:
        if value.strip().isdigit():
            return now + timedelta(seconds=int(value))
        try:
            return parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    for name in ("x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset"):
        reset = headers.get(name)
        if reset and reset.strip().replace(".", "", 1).isdigit():
            number = float(reset)
            # Epoch seconds, except small numbers, which some providers use for "seconds from now".
            return datetime.fromtimestamp(number, UTC) if number > 10**9 else now + timedelta(seconds=number)
    return None


def failure_from_response(response: httpx.Response, channel_hint: str, *, detail: str | None = None,
                          retry_at: datetime | None = None) -> Failure:
    """Classify a non-2xx answer: retry what may pass, fail at once what will not.

    `detail` replaces the excerpt of the body (a provider's own error message); `retry_at` the time the
    headers give (a provider that says when to come back in the body).
    """
    status = response.status_code
    excerpt = detail if detail is not None else (secrets.excerpt(response.text) if response.content else "")
    said = f": {excerpt}" if excerpt else ""
    if status == 429:
        return Failure(f"rate limited (HTTP 429){said}", retryable=True,
                       retry_at=retry_at or retry_at_from(response.headers))
    if status >= 500 or status == 408:
        return Failure(f"server error (HTTP {status}){said}", retryable=True,
                       retry_at=retry_at or retry_at_from(response.headers))
    if status in (401, 403):
        return Failure(f"refused (HTTP {status}): {channel_hint}{said}", retryable=False)
    return Failure(f"rejected (HTTP {status}){said}", retryable=False)


def failure_from_exception(exc: httpx.HTTPError, host: str | None = None) -> Failure:
    """Network trouble is worth another try; the URL is left out as it may carry a secret token.

    `host` (see host_of) names where the trouble is when it is safe to show.
    """
    if isinstance(exc, httpx.TimeoutException):
        return Failure(f"timed out waiting for {host or 'the server'}", retryable=True)
    if isinstance(exc, httpx.ConnectError):
        return Failure(f"cannot reach {host}" if host else "cannot connect to the server", retryable=True)
    if isinstance(exc, httpx.RemoteProtocolError):
        return Failure("the connection was dropped mid-answer", retryable=True)
    return Failure(f"network error: {type(exc).__name__}", retryable=True)


class HttpPublisher(Publisher[C]):
    """A channel that speaks HTTP: one client for the run, opened by open() or on first use, closed by close()."""

    _client: httpx.AsyncClient | None = None

    def client_options(self) -> dict[str, Any]:
        """Extra httpx.AsyncClient options of this channel (headers, limits)."""
        return {}

    async def open(self) -> None:
        self._client = client(self.config.timeout, **self.client_options())

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def http(self) -> httpx.AsyncClient:
        if self._client is None:
            await self.open()
        assert self._client is not None
        return self._client
