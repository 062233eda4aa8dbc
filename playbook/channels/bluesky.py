"""`type: bluesky`: one post per language, links made clickable; later phases reply to the first post."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from atproto import Client, Request, client_utils, models
from atproto.exceptions import AtProtocolError, InvokeTimeoutError, RateLimitExceededError, RequestErrorBase
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from playbook import secrets
from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Publisher, Receipt, host_of
from playbook.publishers.limits import BlueskyText, Limit

POST_URL = "https://bsky.app/profile/{handle}/post/{rkey}"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# A post's remote_id is its at:// URI and CID: a reply must name both of the post it answers.
REF_SEPARATOR = "|"
# Errors of a session that ended (the SDK refreshes before expiry; a suspended laptop can still outlive it).
SESSION_ENDED = ("ExpiredToken", "InvalidToken")
PASSWORD_REFUSED = (
    "Bluesky refused the handle or app password (HTTP {status}{said}): create a new app password in Settings > "
    "Privacy and security > App passwords, then put it in the variable channels.yaml names for app_password "
    "(and check that handle is the account's handle)"
)


class BlueskyConfig(ChannelConfig):
    handle: str = Field(description="The account's handle, e.g. example.bsky.social")
    app_password: SecretStr = Field(description="An app password (Settings > App passwords), not the account's own")
    api_base: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://bsky.social"), description="Where to sign in: bsky.social, or your own PDS"
    )

    @field_validator("handle")
    @classmethod
    def _bare_handle(cls, value: str) -> str:
        handle = value.strip().removeprefix("@").lower()
        if not handle:
            raise ValueError("is empty: write the account's handle, e.g. example.bsky.social")
        return handle


class BlueskyPublisher(Publisher[BlueskyConfig]):
    """Posts the `short` block once per language; one session per run, however many posts it makes."""

    Config = BlueskyConfig
    blocks = ("short",)
    deduplicates = True
    # Bluesky charges 3 points per record created, 5,000 points per account per hour.
    rate_limit = (1666, timedelta(hours=1))
    idempotency = ("each post is written under a record key derived from its delivery: an unconfirmed post retried "
                   "or resumed is found under that key and recorded as already posted, never posted twice")

    _client: Any = None
    # (DID, handle) of the signed-in account, once the session exists.
    _account: tuple[str, str] | None = None
    # A refused password is final for the run: asking again would only spend the sign-in rate limit.
    _refused: Failure | None = None
    _session_lock: asyncio.Lock | None = None

    def limits(self) -> Mapping[str, Limit]:
        return {"short": BlueskyText()}

    @property
    def host(self) -> str:
        return host_of(str(self.config.api_base))

    def client(self) -> Any:
        """An atproto client for `api_base`, each request bounded by `timeout`."""
        return Client(base_url=str(self.config.api_base).rstrip("/"),
                      request=Request(timeout=self.config.timeout.total_seconds()))

    async def open(self) -> None:
        self._client = self.client()
        self._session_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._client is not None:
            self._client.request.close()
        self._client = self._account = None

    async def _signed_in(self) -> tuple[str, str] | Failure:
        """The account's (DID, handle), signing in on the first call only: Bluesky rate-limits createSession."""
        assert self._session_lock is not None
        async with self._session_lock:
            if self._refused is not None:
                return self._refused
            if self._account is None:
                try:
                    profile = await asyncio.to_thread(
                        self._client.login, self.config.handle, self.config.app_password.get_secret_value())
                except (AtProtocolError, httpx.HTTPError) as exc:
                    failure = _failure(exc, self.host, signing_in=True)
                    if not failure.retryable:
                        self._refused = failure
                    return failure
                # A PDS without the Bluesky app view signs in but has no profile: the handle still names the repo.
                self._account = (profile.did, profile.handle) if profile else (self.config.handle, self.config.handle)
            return self._account

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        if self._client is None:
            await self.open()
        account = await self._signed_in()
        if isinstance(account, Failure):
            return account
        did, handle = account
        text = delivery.message.block("short")
        rkey = record_key(delivery)
        record = models.AppBskyFeedPost.Record(
            created_at=self._client.get_current_time_iso(), text=text, langs=[delivery.lang.replace("_", "-")],
            facets=client_utils.detect_facets(text) or None, reply=_reply_to(delivery.thread),
        )
        posts = self._client.app.bsky.feed.post
        try:
            created = await asyncio.to_thread(posts.create, did, record, rkey=rkey)
        except (AtProtocolError, httpx.HTTPError) as exc:
            failure = _failure(exc, self.host)
            if _session_ended(exc):
                self._account = None
            if not _may_exist(exc):
                return failure
            # The key is this delivery's own: a record under it is this very post, from an attempt whose
            # answer was lost (bsky.social answers such a create with 500, newer servers with 409).
            try:
                found = await asyncio.to_thread(posts.get, did, rkey)
            except (AtProtocolError, httpx.HTTPError):
                return failure
            return _receipt(found.uri, found.cid, handle, "already posted: found under its record key")
        note = f"reply to {delivery.thread.url}" if delivery.thread is not None and record.reply else None
        return _receipt(created.uri, created.cid, handle, note)

    async def check(self) -> CheckResult:
        client = self.client()
        try:
            profile = await asyncio.to_thread(client.login, self.config.handle,
                                              self.config.app_password.get_secret_value())
        except (AtProtocolError, httpx.HTTPError) as exc:
            return CheckResult(False, _failure(exc, self.host, signing_in=True).reason)
        finally:
            client.request.close()
        if profile is None:
            return CheckResult(True, f"@{self.config.handle} (signed in; this server has no Bluesky profile)")
        named = f" ({profile.display_name})" if profile.display_name else ""
        return CheckResult(True, f"@{profile.handle}{named}")


def record_key(delivery: Delivery) -> str:
    """A TID that is the same on every attempt and resume of this delivery, and different for any other.

    Its time is the post's deadline to the second (a plausible creation time, stable across runs); the
    microseconds and the clock id come from a hash of the delivery key.
    """
    digest = int.from_bytes(hashlib.sha256(delivery.key.encode()).digest()[:8], "big")
    micros = int(delivery.deadline.timestamp()) * 1_000_000 + digest % 1_000_000
    value = micros << 10 | (digest >> 32) & 0x3FF
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def _reply_to(thread: Receipt | None) -> Any:
    """The reply reference to the thread's first post; none when its id is not a Bluesky post's."""
    if thread is None or not thread.remote_id or REF_SEPARATOR not in thread.remote_id:
        return None
    uri, _, cid = thread.remote_id.partition(REF_SEPARATOR)
    first = models.ComAtprotoRepoStrongRef.Main(uri=uri, cid=cid)
    return models.AppBskyFeedPost.ReplyRef(root=first, parent=first)


def _receipt(uri: str, cid: str, handle: str, note: str | None) -> Receipt:
    rkey = uri.rsplit("/", 1)[-1]
    return Receipt(remote_id=f"{uri}{REF_SEPARATOR}{cid}", url=POST_URL.format(handle=handle, rkey=rkey), note=note)


def _status(exc: Exception) -> int | None:
    response = exc.response if isinstance(exc, RequestErrorBase) else None
    return response.status_code if response is not None else None


def _error(exc: Exception) -> tuple[str, str]:
    """The XRPC error name and message of a refusal, when the server gave them."""
    response = exc.response if isinstance(exc, RequestErrorBase) else None
    content = response.content if response is not None else None
    if isinstance(content, models.common.XrpcError):
        return content.error or "", secrets.excerpt(content.message or "")
    return "", ""


def _session_ended(exc: Exception) -> bool:
    return _error(exc)[0] in SESSION_ENDED


def _may_exist(exc: Exception) -> bool:
    """A refusal that may mean the record key is already taken: 409, or any 5xx."""
    status = _status(exc)
    return status is not None and (status == 409 or status >= 500)


def _failure(exc: Exception, host: str, signing_in: bool = False) -> Failure:
    """What an error of the atproto SDK means for the delivery: retry what may pass, stop the rest."""
    if isinstance(exc, RateLimitExceededError):
        retry_at = exc.reset_at
        if retry_at is None and exc.retry_after is not None:
            retry_at = datetime.now(UTC) + timedelta(seconds=exc.retry_after)
        return Failure("Bluesky rate limit reached (HTTP 429)", retryable=True, retry_at=retry_at)
    if isinstance(exc, InvokeTimeoutError | httpx.TimeoutException):
        return Failure(f"timed out waiting for {host}", retryable=True)
    status = _status(exc)
    if status is None:
        if isinstance(exc, RequestErrorBase | httpx.HTTPError):
            return Failure(f"cannot reach {host}", retryable=True)
        return Failure(f"atproto error: {type(exc).__name__}: {exc}", retryable=False)
    error, message = _error(exc)
    said = f": {error}" + (f": {message}" if message else "") if error else ""
    if status >= 500:
        return Failure(f"Bluesky server error (HTTP {status}){said}", retryable=True)
    if error in SESSION_ENDED:
        return Failure(f"the Bluesky session ended (HTTP {status}{said}); signing in again", retryable=True)
    if status == 401 or error == "AuthenticationRequired" or (signing_in and status == 403):
        return Failure(PASSWORD_REFUSED.format(status=status, said=said), retryable=False)
    if status == 409:
        return Failure(f"Bluesky reports a conflict (HTTP 409){said}", retryable=True)
    return Failure(f"Bluesky refused the post (HTTP {status}){said}", retryable=False)
