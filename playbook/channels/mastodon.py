"""`type: mastodon`: one status per language on a Mastodon account; later phases reply to the first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import requests
from mastodon import (
    Mastodon,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
)
from pydantic import AnyHttpUrl, Field, SecretStr

from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Publisher, Receipt, host_of
from playbook.publishers.limits import Limit, MastodonLength

# Mastodon's own default; an instance may set another, which it publishes in /api/v2/instance.
DEFAULT_LIMIT = 500
URL_WEIGHT = 23
TOKEN_REFUSED = (
    "Mastodon refused the access token (HTTP {status}{said}): generate a new one in Preferences > Development "
    "(open the application, or create one with the write:statuses and read:accounts scopes), then put it in the "
    "variable channels.yaml names for access_token"
)

T = TypeVar("T")


class MastodonConfig(ChannelConfig):
    api_base: AnyHttpUrl = Field(description="The account's instance, e.g. https://mastodon.social")
    access_token: SecretStr
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    max_characters: int | None = Field(
        default=None, ge=1,
        description="The instance's limit, for checks made offline (default 500); posting reads the real one",
    )
    characters_reserved_per_url: int | None = Field(
        default=None, ge=1,
        description="What each link counts on the instance, for checks made offline (default 23)",
    )


class RecordingSession(requests.Session):
    """A requests session that remembers each thread's last answer: Mastodon.py's errors drop its headers."""

    def __init__(self) -> None:
        super().__init__()
        self._last = threading.local()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        self._last.response = response
        return response

    def forget(self) -> None:
        self._last.response = None

    def last_response(self) -> requests.Response | None:
        return getattr(self._last, "response", None)


class MastodonPublisher(Publisher[MastodonConfig]):
    """Posts the `short` block once per language; a later phase replies to that language's first status."""

    Config = MastodonConfig
    blocks = ("short",)
    deduplicates = True
    # Mastodon's default for posting: 300 statuses per account every 3 hours.
    rate_limit = (300, timedelta(hours=3))
    idempotency = ("every status carries its delivery's Idempotency-Key, which Mastodon remembers for an hour: an "
                   "unconfirmed status retried or resumed within the hour is answered with the one already posted")

    _client: Any = None
    _session: RecordingSession | None = None
    _instance_limit: MastodonLength | None = None
    _limit_lock: asyncio.Lock | None = None

    def limits(self) -> Mapping[str, Limit]:
        return {"short": MastodonLength(self.config.max_characters or DEFAULT_LIMIT,
                                        self.config.characters_reserved_per_url or URL_WEIGHT)}

    @property
    def host(self) -> str:
        return host_of(str(self.config.api_base))

    def client(self) -> tuple[Any, RecordingSession]:
        """A Mastodon.py client for this account that never calls out on its own: no version check, no waiting."""
        session = RecordingSession()
        client = Mastodon(
            access_token=self.config.access_token.get_secret_value(),
            api_base_url=str(self.config.api_base).rstrip("/"),
            request_timeout=self.config.timeout.total_seconds(),
            # "none": no request to the instance at construction; "throw": a 429 comes back to the engine,
            # which knows the window, instead of Mastodon.py sleeping in a thread nobody can stop.
            version_check_mode="none",
            ratelimit_method="throw",
            session=session,
        )
        return client, session

    async def open(self) -> None:
        self._client, self._session = self.client()
        self._limit_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._client = self._session = None

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        if self._client is None or self._session is None:
            await self.open()
        assert self._session is not None
        limit = await self._limit()
        if isinstance(limit, Failure):
            return limit
        text = delivery.message.block("short")
        measure = limit.measure(text)
        if not measure.ok:
            return Failure(f"block 'short' is {measure}, over this instance's limit: shorten it (and set "
                           f"max_characters: {limit.limit} so validation catches it); nothing was posted",
                           retryable=False)
        reply_to = delivery.thread.remote_id if delivery.thread is not None else None
        client = self._client
        outcome = await asyncio.to_thread(
            _in_thread, self._session, self.host, lambda: client.status_post(
                text, in_reply_to_id=reply_to, visibility=self.config.visibility,
                language=_language(delivery.lang), idempotency_key=delivery.key,
            ),
        )
        if isinstance(outcome, Failure):
            return outcome
        note = f"reply to {reply_to}" if reply_to else None
        return Receipt(remote_id=str(outcome["id"]), url=outcome.get("url") or outcome.get("uri"), note=note)

    async def _limit(self) -> MastodonLength | Failure:
        """The instance's own limit, read once before the first status of the run."""
        assert self._limit_lock is not None and self._session is not None
        async with self._limit_lock:
            if self._instance_limit is None:
                client = self._client
                read = await asyncio.to_thread(_in_thread, self._session, self.host, lambda: _instance_limits(client))
                if isinstance(read, Failure):
                    return read
                self._instance_limit = MastodonLength(read[0], read[1])
            return self._instance_limit

    async def check(self) -> CheckResult:
        client, session = self.client()
        try:
            account = await asyncio.to_thread(_in_thread, session, self.host, client.account_verify_credentials)
            if isinstance(account, Failure):
                return CheckResult(False, account.reason)
            limits = await asyncio.to_thread(_in_thread, session, self.host, lambda: _instance_limits(client))
            if isinstance(limits, Failure):
                return CheckResult(False, f"cannot read the instance's character limit: {limits.reason}")
        finally:
            session.close()
        allowed, per_url = limits
        checked = self.config.max_characters or DEFAULT_LIMIT
        checked_url = self.config.characters_reserved_per_url or URL_WEIGHT
        who = f"@{account['acct']}@{urlsplit(str(self.config.api_base)).hostname}"
        if allowed < checked:
            return CheckResult(False, f"{who}: the instance allows {allowed} characters per post, fewer than the "
                                      f"{checked} messages are checked against: set max_characters: {allowed}")
        if per_url > checked_url:
            return CheckResult(False, f"{who}: the instance counts each link as {per_url} characters, more than the "
                                      f"{checked_url} messages are checked with: set characters_reserved_per_url: "
                                      f"{per_url}")
        more = (f"; messages are checked against {checked}: set max_characters: {allowed} to use them all"
                if allowed > checked else "")
        return CheckResult(True, f"{who}, posts up to {allowed} characters, links count {per_url}{more}")


def _language(lang: str) -> str:
    """The ISO 639 code Mastodon takes: it files an unknown regional tag under the account's default language."""
    return lang.replace("_", "-").split("-")[0].lower()


def _instance_limits(client: Any) -> tuple[int, int]:
    """(characters per post, characters per URL) from /api/v2/instance, or /api/v1/instance before Mastodon 4."""
    try:
        instance = client.instance_v2()
    except MastodonNotFoundError:
        instance = client.instance_v1()
    statuses = (instance.get("configuration") or {}).get("statuses") or {}
    # Pleroma and Akkoma publish the limit as max_toot_chars.
    limit = statuses.get("max_characters") or instance.get("max_toot_chars") or DEFAULT_LIMIT
    return int(limit), int(statuses.get("characters_reserved_per_url") or URL_WEIGHT)


def _in_thread(session: RecordingSession, host: str, action: Callable[[], T]) -> T | Failure:
    """Run one Mastodon.py call in this worker thread; its error becomes a Failure, read with the answer's headers."""
    session.forget()
    try:
        return action()
    except MastodonError as exc:
        return _failure(exc, session.last_response(), host)


def _failure(exc: MastodonError, response: requests.Response | None, host: str) -> Failure:
    """What an error of Mastodon.py means for the delivery: retry what may pass, stop the rest."""
    if isinstance(exc, MastodonRatelimitError):
        return Failure("Mastodon rate limit reached (HTTP 429)", retryable=True, retry_at=_reset_at(response))
    if isinstance(exc, MastodonNetworkError):
        if isinstance(exc.__context__, requests.Timeout):
            return Failure(f"timed out waiting for {host}", retryable=True)
        return Failure(f"cannot reach {host}", retryable=True)
    if isinstance(exc, MastodonIllegalArgumentError):
        return Failure(f"Mastodon.py refused the request: {exc}", retryable=False)
    status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
    said = f": {exc.args[3]}" if len(exc.args) > 3 and exc.args[3] else ""
    if status is None:
        # An answer Mastodon.py could not read; the Idempotency-Key makes another try safe.
        return Failure(f"unexpected answer from {host}: {type(exc).__name__}", retryable=True)
    if status >= 500:
        return Failure(f"Mastodon server error (HTTP {status}){said}", retryable=True)
    if status in (401, 403):
        return Failure(TOKEN_REFUSED.format(status=status, said=said), retryable=False)
    if status == 422:
        return Failure(f"Mastodon refused the status (HTTP 422){said}", retryable=False)
    return Failure(f"Mastodon rejected the request (HTTP {status}){said}", retryable=False)


def _reset_at(response: requests.Response | None) -> datetime | None:
    """When a 429 ends: X-RateLimit-Reset, an ISO 8601 date on Mastodon, epoch seconds on some other servers."""
    value = (response.headers.get("X-RateLimit-Reset") or "").strip() if response is not None else ""
    if not value:
        return None
    if value.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(value), UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
