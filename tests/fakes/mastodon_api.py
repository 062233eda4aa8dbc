"""A fake Mastodon instance on 127.0.0.1: the endpoints Mastodon.py calls to post, scriptable to fail.

It answers as Mastodon 4.x does: a Bearer token is required, a status longer than the instance's limit
(graphemes, every URL counted 23) is refused with 422, and a repeated Idempotency-Key is answered with the
status it first created instead of a second one.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import regex

URL = re.compile(r"https?://\S+")
VISIBILITIES = ("public", "unlisted", "private", "direct")
INVALID_TOKEN = "The access token is invalid"


@dataclass(frozen=True)
class Answer:
    """A canned answer to the next request to a path; status None answers as Mastodon would."""

    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering; a status is stored first, as when one is posted but the answer is lost.
    delay: float = 0.0

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
        return cls(status, f"<html><body><h1>{status} Service Unavailable</h1></body></html>")

    @classmethod
    def unauthorized(cls) -> Answer:
        return cls(401, {"error": INVALID_TOKEN})

    @classmethod
    def unprocessable(cls, detail: str) -> Answer:
        return cls(422, {"error": f"Validation failed: {detail}"})

    @classmethod
    def slow(cls, delay: float) -> Answer:
        return cls(delay=delay)


@dataclass(frozen=True)
class Recorded:
    """One request: headers lower-cased, `params` the form or JSON body (or the query of a GET)."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]
    at: float = field(default_factory=time.time)


def status_length(text: str, per_url: int = 23) -> int:
    """Mastodon's count: grapheme clusters, with every URL counting `per_url` whatever its length."""
    return len(regex.findall(r"\X", URL.sub("", text))) + per_url * len(URL.findall(text))


class FakeMastodon:
    """`POST /api/v1/statuses`, `verify_credentials` and the instance endpoints, every request recorded."""

    def __init__(self, token: str, *, username: str = "example_support", max_characters: int = 500,
                 v2_instance: bool = True) -> None:
        self.token = token
        self.username = username
        self.max_characters = max_characters
        self.v2_instance = v2_instance
        self.requests: list[Recorded] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self._by_key: dict[str, str] = {}
        self._answers: dict[str, deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._next_id = 113_000_000_000_000_000
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-mastodon", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, path: str, *answers: Answer) -> None:
        """Answer the next requests to `path` with these, in order; then as Mastodon would."""
        with self._lock:
            self._answers[path].extend(answers)

    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/api/v1/statuses"]

    def __enter__(self) -> FakeMastodon:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

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
                    "characters_reserved_per_url": 23}
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

    def _act(self, method: str, route: str, headers: dict[str, str],
             params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        # Mastodon.py asks for the instance with a trailing slash; Rails routes both.
        route = route.rstrip("/") or "/"
        if method == "GET" and route == "/api/v2/instance":
            return (200, self._instance(2), {}) if self.v2_instance else (404, {"error": "Record not found"}, {})
        if method == "GET" and route == "/api/v1/instance":
            return 200, self._instance(1), {}
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": INVALID_TOKEN}, {}
        if method == "GET" and route == "/api/v1/accounts/verify_credentials":
            return 200, self._account(), {}
        if method == "POST" and route == "/api/v1/statuses":
            status, body = self._post(params, headers.get("idempotency-key"))
            remaining = max(0, 300 - len(self.statuses))
            return status, body, {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": str(remaining)}
        return 404, {"error": "Record not found"}, {}

    def _answer(self, method: str, path: str, headers: dict[str, str],
                params: dict[str, Any]) -> tuple[int, Any, dict[str, str], float]:
        route = urlsplit(path).path
        with self._lock:
            self.requests.append(Recorded(method, route, headers, params))
            queue = self._answers[route.rstrip("/")]
            canned = queue.popleft() if queue else None
        if canned is not None and canned.status is not None:
            return canned.status, canned.body, canned.headers, canned.delay
        status, body, extra = self._act(method, route, headers, params)
        return status, body, extra, canned.delay if canned else 0.0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                self._serve({k: v[-1] for k, v in query.items()})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                if "json" in (self.headers.get("content-type") or ""):
                    params: dict[str, Any] = json.loads(raw) if raw else {}
                else:
                    params = {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
                self._serve(params)

            def _serve(self, params: dict[str, Any]) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body, extra, delay = fake._answer(self.command, self.path, headers, params)
                if delay and fake._stopping.wait(delay):
                    return
                if isinstance(body, str):
                    data, kind = body.encode(), "text/html; charset=utf-8"
                else:
                    data, kind = json.dumps(body).encode(), "application/json; charset=utf-8"
                try:
                    self.send_response(status)
                    self.send_header("content-type", kind)
                    self.send_header("content-length", str(len(data)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
