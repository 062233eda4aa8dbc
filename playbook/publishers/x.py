"""`type: x`: one post per language on X (API v2, OAuth 1.0a user context); later phases reply to the first."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import tweepy
from pydantic import AnyHttpUrl, Field, SecretStr

from playbook import secrets
from playbook.limits import Limit, XWeighted
from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Publisher, Receipt

# The host tweepy writes into every URL it builds; it has no setting for another one.
TWEEPY_HOST = "https://api.twitter.com"
STATUS_URL = "https://x.com/i/web/status/{id}"
# X's answers to a text already on the timeline: v2 says it in words, v1.1 used code 187.
DUPLICATE_WORDS = "duplicate content"
DUPLICATE_CODE = 187
CREDENTIALS_REFUSED = (
    "X refused the credentials (401): regenerate the access token and secret in the X developer portal "
    "(and check the consumer key and secret), then update X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET "
    "(or whichever variables channels.yaml names for them)"
)


class XConfig(ChannelConfig):
    consumer_key: SecretStr
    consumer_secret: SecretStr
    access_token: SecretStr
    access_token_secret: SecretStr
    api_base: AnyHttpUrl = Field(
        default=AnyHttpUrl(TWEEPY_HOST), description="Where the X API is: another host for a sandbox or a fake"
    )


class RoutedSession(requests.Session):
    """A requests session that sends tweepy's calls to `api_base` and bounds each by `timeout` seconds."""

    def __init__(self, api_base: str, timeout: float) -> None:
        super().__init__()
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        # Rewritten here, before requests prepares the call, so the OAuth signature covers the real URL.
        if isinstance(url, str) and url.startswith(TWEEPY_HOST + "/"):
            url = self.api_base + url[len(TWEEPY_HOST):]
        # The engine stops waiting after `timeout`, but cannot stop a thread: this ends the call itself.
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


class XPublisher(Publisher[XConfig]):
    """Posts the `short` block once per language; a later phase replies to that language's first post."""

    Config = XConfig
    blocks = ("short",)
    idempotency = ("X takes no idempotency key, but refuses a text already on the timeline: an unconfirmed post "
                   "retried on resume is answered 'duplicate' and recorded as already posted")

    _client: Any = None

    def limits(self) -> Mapping[str, Limit]:
        return {"short": XWeighted()}

    @property
    def host(self) -> str:
        return urlsplit(str(self.config.api_base)).netloc

    def _new_client(self) -> Any:
        """A tweepy Client for this account, routed to `api_base`, each request bounded by `timeout`."""
        config = self.config
        client = tweepy.Client(
            consumer_key=config.consumer_key.get_secret_value(),
            consumer_secret=config.consumer_secret.get_secret_value(),
            access_token=config.access_token.get_secret_value(),
            access_token_secret=config.access_token_secret.get_secret_value(),
        )
        client.session.close()
        client.session = RoutedSession(str(config.api_base), config.timeout.total_seconds())
        return client

    async def open(self) -> None:
        self._client = self._new_client()

    async def close(self) -> None:
        if self._client is not None:
            self._client.session.close()
            self._client = None

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        if self._client is None:
            await self.open()
        reply_to = delivery.thread.remote_id if delivery.thread is not None else None
        try:
            response = await asyncio.to_thread(
                self._client.create_tweet, text=delivery.message.block("short"), in_reply_to_tweet_id=reply_to,
                user_auth=True,
            )
        except tweepy.Forbidden as exc:
            if _is_duplicate(exc):
                return Receipt(note="X reports a duplicate: already posted (this exact text is on the timeline)")
            return _failure(exc, self.host)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            return _failure(exc, self.host)
        tweet_id = str(response.data["id"])
        note = f"reply to {reply_to}" if reply_to else None
        return Receipt(remote_id=tweet_id, url=STATUS_URL.format(id=tweet_id), note=note)

    async def check(self) -> CheckResult:
        client = self._new_client()
        try:
            response = await asyncio.to_thread(client.get_me, user_auth=True)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            return CheckResult(False, _failure(exc, self.host).reason)
        finally:
            client.session.close()
        return CheckResult(True, f"@{response.data.username}")


def _is_duplicate(exc: tweepy.HTTPException) -> bool:
    return DUPLICATE_CODE in exc.api_codes or any(DUPLICATE_WORDS in str(m).lower() for m in exc.api_messages)


def _said(exc: tweepy.HTTPException) -> str:
    words = secrets.excerpt(" ".join(str(m) for m in exc.api_messages))
    return f": {words}" if words else ""


def _failure(exc: Exception, host: str) -> Failure:
    """What an error of tweepy or requests means for the delivery: retry what may pass, stop the rest."""
    if isinstance(exc, tweepy.TooManyRequests):
        # The engine waits for the reset when it falls inside the window, and names it when it does not.
        retry_at = datetime.fromtimestamp(exc.reset_time, UTC) if exc.reset_time else None
        return Failure("X rate limit reached (HTTP 429)", retryable=True, retry_at=retry_at)
    if isinstance(exc, tweepy.TwitterServerError):
        return Failure(f"X server error (HTTP {exc.response.status_code}){_said(exc)}", retryable=True)
    if isinstance(exc, tweepy.Unauthorized):
        return Failure(CREDENTIALS_REFUSED, retryable=False)
    if isinstance(exc, tweepy.Forbidden):
        hint = ("; give the app Read and Write permission in the X developer portal, then regenerate the access "
                "token and secret" if "permission" in _said(exc).lower() else "")
        return Failure(f"X refused the post (HTTP 403){_said(exc)}{hint}", retryable=False)
    if isinstance(exc, tweepy.HTTPException):
        return Failure(f"X rejected the request (HTTP {exc.response.status_code}){_said(exc)}", retryable=False)
    if isinstance(exc, requests.Timeout):
        return Failure(f"timed out waiting for {host}", retryable=True)
    if isinstance(exc, requests.ConnectionError):
        return Failure(f"cannot reach {host}", retryable=True)
    return Failure(f"network error talking to {host}: {type(exc).__name__}", retryable=True)
