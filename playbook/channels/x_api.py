"""X through tweepy and requests: the session routed to `api_base`, and what tweepy's errors mean.

Apart from playbook/channels/x.py so that listing or validating an X channel never imports tweepy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import requests
import tweepy

from playbook import secrets
from playbook.channels.x import TWEEPY_HOST
from playbook.publishers.base import Failure

# X's answers to a text already on the timeline: v2 says it in words, v1.1 used code 187.
DUPLICATE_WORDS = "duplicate content"
DUPLICATE_CODE = 187
CREDENTIALS_REFUSED = (
    "X refused the credentials (401): regenerate the access token and secret in the X developer portal "
    "(and check the consumer key and secret), then update X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET "
    "(or whichever variables channels.yaml names for them)"
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


def is_duplicate(exc: tweepy.HTTPException) -> bool:
    return DUPLICATE_CODE in exc.api_codes or any(DUPLICATE_WORDS in str(m).lower() for m in exc.api_messages)


def _said(exc: tweepy.HTTPException) -> str:
    words = secrets.excerpt(" ".join(str(m) for m in exc.api_messages))
    return f": {words}" if words else ""


def failure(exc: Exception, host: str) -> Failure:
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
