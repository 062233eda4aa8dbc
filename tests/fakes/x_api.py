"""A fake X API v2 on 127.0.0.1: the endpoints tweepy's Client uses, OAuth 1.0a checked, scriptable to fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from oauthlib.oauth1.rfc5849 import signature, utils

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


@dataclass(frozen=True)
class Answer:
    """A canned answer to the next request to a path; status None answers as X would."""

    status: int | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering; a post is stored first, as when X posts but the answer is lost.
    delay: float = 0.0

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
        return cls(401, _unauthorized_body())

    @classmethod
    def duplicate(cls) -> Answer:
        return cls(403, _duplicate_body())

    @classmethod
    def slow(cls, delay: float) -> Answer:
        return cls(delay=delay)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    at: float = field(default_factory=time.time)


def _unauthorized_body() -> dict[str, Any]:
    return {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}


def _duplicate_body() -> dict[str, Any]:
    return {"detail": DUPLICATE_DETAIL, "type": "about:blank", "title": "Forbidden", "status": 403}


class FakeXApi:
    """`POST /2/tweets` and `GET /2/users/me`; every request recorded, signatures checked against `accept`."""

    def __init__(self, accept: Credentials, username: str = "example_support") -> None:
        self.accept = accept
        self.username = username
        self.requests: list[Recorded] = []
        self.tweets: dict[str, dict[str, Any]] = {}
        self._answers: dict[str, deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._next_id = 1_860_000_000_000_000_000
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, path: str, *answers: Answer) -> None:
        """Answer the next requests to `path` with these, in order; then as X would."""
        with self._lock:
            self._answers[path].extend(answers)

    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/2/tweets"]

    def __enter__(self) -> FakeXApi:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- what X would do ----------------------------------------------------------------------------
    def _authorised(self, method: str, path: str, headers: dict[str, str]) -> bool:
        """An OAuth 1.0a header for the accepted app and user, signed over this very URL."""
        header = headers.get("authorization", "")
        if not header.startswith("OAuth "):
            return False
        params = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(header)}
        if (params.get("oauth_consumer_key") != self.accept.consumer_key
                or params.get("oauth_token") != self.accept.access_token
                or params.get("oauth_signature_method") != "HMAC-SHA1"):
            return False
        split = urlsplit(path)
        collected = signature.collect_parameters(uri_query=split.query, headers={"Authorization": header},
                                                 exclude_oauth_signature=True)
        uri = signature.base_string_uri(f"http://{headers.get('host', '')}{split.path}")
        base = signature.signature_base_string(method, uri, signature.normalize_parameters(collected))
        key = f"{utils.escape(self.accept.consumer_secret)}&{utils.escape(self.accept.access_token_secret)}"
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()
        return hmac.compare_digest(expected, params.get("oauth_signature", ""))

    def _act(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        if method == "GET" and path == "/2/users/me":
            return 200, {"data": {"id": "2244994945", "name": "Example Support", "username": self.username}}
        if method == "POST" and path == "/2/tweets":
            text = (body or {}).get("text")
            if not isinstance(text, str) or not text:
                return 400, {"title": "Invalid Request", "detail": "text is required", "status": 400}
            with self._lock:
                if any(t["text"] == text for t in self.tweets.values()):
                    return 403, _duplicate_body()
                self._next_id += 1
                tweet_id = str(self._next_id)
                self.tweets[tweet_id] = dict(body or {})
            return 201, {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}}
        return 404, {"title": "Not Found Error", "detail": f"no route {method} {path}", "status": 404}

    def _answer(self, method: str, path: str, headers: dict[str, str],
                body: dict[str, Any] | None) -> tuple[int, dict[str, Any], dict[str, str], float]:
        with self._lock:
            self.requests.append(Recorded(method, path, headers, body))
            route = urlsplit(path).path
            canned = self._answers[route].popleft() if self._answers[route] else None
        if canned is not None and canned.status is not None:
            return canned.status, canned.body or {}, canned.headers, canned.delay
        if not self._authorised(method, path, headers):
            return 401, _unauthorized_body(), {}, 0.0
        status, payload = self._act(method, route, body)
        return status, payload, {}, canned.delay if canned else 0.0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                self._serve(json.loads(raw) if raw else None)

            def _serve(self, body: dict[str, Any] | None) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, extra, delay = fake._answer(self.command, self.path, headers, body)
                if delay and fake._stopping.wait(delay):
                    return
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json; charset=utf-8")
                    self.send_header("content-length", str(len(data)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up waiting, as a timed-out client does

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
