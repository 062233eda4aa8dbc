"""A fake X API v2 on 127.0.0.1: the endpoints tweepy's Client uses, OAuth 1.0a checked, scriptable to fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from oauthlib.oauth1.rfc5849 import signature, utils

from tests.fakes import provider
from tests.fakes.provider import ProviderFake, Received

DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."


@dataclass(frozen=True)
class Credentials:
    """The four OAuth 1.0a values of an app and its user."""

    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str

    def values(self) -> list[str]:
        return [self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret]


class Answer(provider.Answer):
    """X's answers, scripted by path: `x_api.script("/2/tweets", Answer.rate_limited(reset))`."""

    @classmethod
    def rate_limited(cls, reset: float) -> Answer:
        return cls(429, {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                         "status": 429}, {"x-rate-limit-reset": str(int(reset)), "x-rate-limit-remaining": "0"})

    @classmethod
    def server_error(cls, status: int = 503) -> Answer:
        return cls(status, {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank",
                            "status": status})

    @classmethod
    def unauthorized(cls) -> Answer:
        return cls(401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})

    @classmethod
    def duplicate(cls) -> Answer:
        return cls(403, {"detail": DUPLICATE_DETAIL, "type": "about:blank", "title": "Forbidden", "status": 403})


class FakeXApi(ProviderFake):
    """`POST /2/tweets` and `GET /2/users/me`; every request recorded, signatures checked against `accept`."""

    def __init__(self, accept: Credentials, username: str = "example_support") -> None:
        super().__init__()
        self.accept = accept
        self.username = username
        self.tweets: dict[str, dict[str, Any]] = {}
        self._next_id = 1_860_000_000_000_000_000

    def posts(self) -> list[Received]:
        return [r for r in self.requests("/2/tweets") if r.method == "POST"]

    def answer(self, request: Received) -> Answer:
        if not self._authorised(request):
            return Answer.unauthorized()
        if request.method == "GET" and request.path == "/2/users/me":
            return Answer(200, {"data": {"id": "2244994945", "name": "Example Support", "username": self.username}})
        if request.method == "POST" and request.path == "/2/tweets":
            return self._post(request.json)
        return Answer(404, {"title": "Not Found Error", "detail": f"no route {request.method} {request.path}",
                            "status": 404})

    def _authorised(self, request: Received) -> bool:
        """An OAuth 1.0a header for the accepted app and user, signed over this very URL."""
        header = request.headers.get("authorization", "")
        if not header.startswith("OAuth "):
            return False
        params = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(header)}
        if (params.get("oauth_consumer_key") != self.accept.consumer_key
                or params.get("oauth_token") != self.accept.access_token
                or params.get("oauth_signature_method") != "HMAC-SHA1"):
            return False
        collected = signature.collect_parameters(uri_query=urlencode(request.query),
                                                 headers={"Authorization": header}, exclude_oauth_signature=True)
        uri = signature.base_string_uri(f"http://{request.headers.get('host', '')}{request.path}")
        base = signature.signature_base_string(request.method, uri, signature.normalize_parameters(collected))
        key = f"{utils.escape(self.accept.consumer_secret)}&{utils.escape(self.accept.access_token_secret)}"
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()
        return hmac.compare_digest(expected, params.get("oauth_signature", ""))

    def _post(self, body: dict[str, Any] | None) -> Answer:
        text = (body or {}).get("text")
        if not isinstance(text, str) or not text:
            return Answer(400, {"title": "Invalid Request", "detail": "text is required", "status": 400})
        with self._lock:
            if any(t["text"] == text for t in self.tweets.values()):
                return Answer.duplicate()
            self._next_id += 1
            tweet_id = str(self._next_id)
            self.tweets[tweet_id] = dict(body or {})
        return Answer(201, {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}})
