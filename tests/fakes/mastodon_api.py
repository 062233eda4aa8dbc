"""A fake Mastodon instance on 127.0.0.1: the endpoints Mastodon.py calls to post, scriptable to fail.

It answers as Mastodon 4.x does: a Bearer token is required, a status longer than the instance's limit
(graphemes, every URL counted 23) is refused with 422, and a repeated Idempotency-Key is answered with the
status it first created instead of a second one.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import regex

from tests.fakes import provider
from tests.fakes.provider import ProviderFake, Received

URL = re.compile(r"https?://\S+")
VISIBILITIES = ("public", "unlisted", "private", "direct")
INVALID_TOKEN = "The access token is invalid"


class Answer(provider.Answer):
    """Mastodon's answers, scripted by path: `mastodon.script("/api/v1/statuses", Answer.server_error())`."""

    @classmethod
    def rate_limited(cls, reset: datetime) -> Answer:
        """Mastodon's 429, with the reset as the ISO 8601 date it sends."""
        return cls(429, {"error": "Too many requests"}, {
            "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        })

    @classmethod
    def server_error(cls, status: int = 503) -> Answer:
        """What the proxy in front of Mastodon says when Puma is down: HTML, not JSON."""
        return cls(status, f"<html><body><h1>{status} Service Unavailable</h1></body></html>",
                   {"content-type": "text/html; charset=utf-8"})

    @classmethod
    def unauthorized(cls) -> Answer:
        return cls(401, {"error": INVALID_TOKEN})

    @classmethod
    def unprocessable(cls, detail: str) -> Answer:
        return cls(422, {"error": f"Validation failed: {detail}"})


def status_length(text: str, per_url: int = 23) -> int:
    """Mastodon's count: grapheme clusters, with every URL counting `per_url` whatever its length."""
    return len(regex.findall(r"\X", URL.sub("", text))) + per_url * len(URL.findall(text))


class FakeMastodon(ProviderFake):
    """`POST /api/v1/statuses`, `verify_credentials` and the instance endpoints, every request recorded."""

    def __init__(self, token: str, *, username: str = "example_support", max_characters: int = 500,
                 v2_instance: bool = True) -> None:
        super().__init__()
        self.token = token
        self.username = username
        self.max_characters = max_characters
        self.v2_instance = v2_instance
        self.characters_reserved_per_url = 23
        self.statuses: dict[str, dict[str, Any]] = {}
        self._by_key: dict[str, str] = {}
        self._next_id = 113_000_000_000_000_000

    def route(self, request: Received) -> str:
        # Mastodon.py asks for the instance with a trailing slash; Rails routes both.
        return request.path.rstrip("/") or "/"

    def posts(self) -> list[Received]:
        return [r for r in self.requests("/api/v1/statuses") if r.method == "POST"]

    def answer(self, request: Received) -> Answer:
        route = self.route(request)
        if request.method == "GET" and route == "/api/v2/instance":
            return Answer(200, self._instance(2)) if self.v2_instance else Answer(404, {"error": "Record not found"})
        if request.method == "GET" and route == "/api/v1/instance":
            return Answer(200, self._instance(1))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Answer.unauthorized()
        if request.method == "GET" and route == "/api/v1/accounts/verify_credentials":
            return Answer(200, self._account())
        if request.method == "POST" and route == "/api/v1/statuses":
            status, body = self._post(request.params, request.headers.get("idempotency-key"))
            remaining = max(0, 300 - len(self.statuses))
            return Answer(status, body, {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": str(remaining)})
        return Answer(404, {"error": "Record not found"})

    # -- what Mastodon would do ---------------------------------------------------------------------
    def _account(self) -> dict[str, Any]:
        return {
            "id": "109000000000000001", "username": self.username, "acct": self.username,
            "display_name": "Example Support", "locked": False, "bot": False, "group": False,
            "created_at": "2022-11-01T00:00:00.000Z", "note": "", "url": f"{self.url}/@{self.username}",
            "avatar": f"{self.url}/avatars/original/missing.png", "header": f"{self.url}/headers/original/missing.png",
            "followers_count": 1200, "following_count": 10, "statuses_count": len(self.statuses),
            "emojis": [], "fields": [],
        }

    def _instance(self, version: int) -> dict[str, Any]:
        statuses = {"max_characters": self.max_characters, "max_media_attachments": 4,
                    "characters_reserved_per_url": self.characters_reserved_per_url}
        if version == 2:
            return {"domain": "127.0.0.1", "title": "Fake Mastodon", "version": "4.3.0",
                    "configuration": {"statuses": statuses}}
        return {"uri": "127.0.0.1", "title": "Fake Mastodon", "version": "3.5.5",
                "configuration": {"statuses": statuses}}

    def _post(self, params: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        text = params.get("status")
        if not isinstance(text, str) or not text.strip():
            return 422, {"error": "Validation failed: Text can't be blank"}
        if status_length(text) > self.max_characters:
            return 422, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"}
        visibility = params.get("visibility", "public")
        if visibility not in VISIBILITIES:
            return 422, {"error": "Validation failed: Visibility is not included in the list"}
        with self._lock:
            if key is not None and key in self._by_key:
                return 200, self._status_json(self._by_key[key])
            reply_to = params.get("in_reply_to_id")
            if reply_to is not None and reply_to not in self.statuses:
                return 404, {"error": "Record not found"}
            self._next_id += 1
            status_id = str(self._next_id)
            self.statuses[status_id] = {**params, "visibility": visibility, "idempotency_key": key,
                                        "created_at": datetime.now(UTC)}
            if key is not None:
                self._by_key[key] = status_id
            return 200, self._status_json(status_id)

    def _status_json(self, status_id: str) -> dict[str, Any]:
        stored = self.statuses[status_id]
        return {
            "id": status_id, "created_at": stored["created_at"].isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "in_reply_to_id": stored.get("in_reply_to_id"),
            "in_reply_to_account_id": "109000000000000001" if stored.get("in_reply_to_id") else None,
            "sensitive": False, "spoiler_text": "", "visibility": stored["visibility"],
            "language": stored.get("language"), "uri": f"{self.url}/users/{self.username}/statuses/{status_id}",
            "url": f"{self.url}/@{self.username}/{status_id}", "replies_count": 0, "reblogs_count": 0,
            "favourites_count": 0, "content": f"<p>{html.escape(stored['status'])}</p>", "reblog": None,
            "account": self._account(), "media_attachments": [], "mentions": [], "tags": [], "emojis": [],
            "card": None, "poll": None,
        }
