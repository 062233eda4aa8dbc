"""`type: x`: one post per language on X (API v2, OAuth 1.0a user context); later phases reply to the first."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr

from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Publisher, Receipt, host_of
from playbook.publishers.limits import Limit, XWeighted

# The host tweepy writes into every URL it builds; it has no setting for another one.
TWEEPY_HOST = "https://api.twitter.com"
STATUS_URL = "https://x.com/i/web/status/{id}"


class XConfig(ChannelConfig):
    consumer_key: SecretStr
    consumer_secret: SecretStr
    access_token: SecretStr
    access_token_secret: SecretStr
    api_base: AnyHttpUrl = Field(
        default=AnyHttpUrl(TWEEPY_HOST), description="Where the X API is: another host for a sandbox or a fake"
    )


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
        return host_of(str(self.config.api_base))

    def _new_client(self) -> Any:
        """A tweepy Client for this account, routed to `api_base`, each request bounded by `timeout`."""
        import tweepy

        from playbook.channels.x_api import RoutedSession

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
        import requests
        import tweepy

        from playbook.channels.x_api import failure, is_duplicate

        if self._client is None:
            await self.open()
        reply_to = delivery.thread.remote_id if delivery.thread is not None else None
        try:
            response = await asyncio.to_thread(
                self._client.create_tweet, text=delivery.message.block("short"), in_reply_to_tweet_id=reply_to,
                user_auth=True,
            )
        except tweepy.Forbidden as exc:
            if is_duplicate(exc):
                return Receipt(note="X reports a duplicate: already posted (this exact text is on the timeline)")
            return failure(exc, self.host)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            return failure(exc, self.host)
        tweet_id = str(response.data["id"])
        note = f"reply to {reply_to}" if reply_to else None
        return Receipt(remote_id=tweet_id, url=STATUS_URL.format(id=tweet_id), note=note)

    async def check(self) -> CheckResult:
        import requests
        import tweepy

        from playbook.channels.x_api import failure

        client = self._new_client()
        try:
            response = await asyncio.to_thread(client.get_me, user_auth=True)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            return CheckResult(False, failure(exc, self.host).reason)
        finally:
            client.session.close()
        return CheckResult(True, f"@{response.data.username}")
