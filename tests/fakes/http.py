"""A webhook sink: a real HTTP server on 127.0.0.1 that records every request and answers as scripted.

Each path has a queue of scripted replies (status, headers, body, delay, a dropped connection); once the
queue is empty the path answers 200 with `{"id": ..., "url": ...}`. A default delay applies to every
request, so "a slow channel" is one line in a test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

# The signing secret use_webhooks writes to a home's .env: distinctive, so a leak is easy to grep.
SECRET = "whsec-test-5f1c9a"


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `body` None means the default receipt; `drop` closes the socket mid-answer."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float | None = None
    drop: bool = False


@dataclass(frozen=True)
class Request:
    """What the sink received: headers are lower-cased, `at` is time.monotonic() on arrival."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")

    def signed_with(self, secret: str) -> bool:
        """True when X-Playbook-Signature is the HMAC-SHA256 of the raw body under `secret`."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-playbook-signature", ""), expected)


class WebhookSink:
    """The server and its script; use as a context manager or through the `webhook_sink` fixture."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = {}
        self._requests: list[Request] = []
        self._served: Counter[str] = Counter()
        # TCP connections accepted, whether or not a request followed.
        self.connections = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.sink = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def script(self, path: str, *replies: Reply) -> None:
        """Queue replies for `path` (with or without the leading slash), answered in order."""
        with self._lock:
            self._scripts.setdefault("/" + path.lstrip("/"), deque()).extend(replies)

    def unscript(self, path: str) -> None:
        """Drop the replies still queued for `path`: it answers 200 from now on (a provider that recovered)."""
        with self._lock:
            self._scripts.pop("/" + path.lstrip("/"), None)

    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            found = list(self._requests)
        return found if path is None else [r for r in found if r.path == "/" + path.lstrip("/")]

    def keys(self) -> Counter[str]:
        """How many requests arrived for each Idempotency-Key."""
        return Counter(r.key for r in self.requests() if r.key is not None)

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _receive(self, request: Request) -> tuple[Reply, str]:
        with self._lock:
            self._requests.append(request)
            queue = self._scripts.get(request.path)
            reply = queue.popleft() if queue else Reply()
            self._served[request.path] += 1
            name = f"{request.path.strip('/').replace('/', '-') or 'root'}-{self._served[request.path]}"
        return reply, name


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # Many deliveries connect at the same instant: the default backlog of 5 would drop SYNs (1 s retransmits).
    request_queue_size = 128
    sink: WebhookSink

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self.sink._lock:
            self.sink.connections += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def _answer(self) -> None:
        sink = self.server.sink
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client went away before its body was complete (killed mid-request): a real receiver never
            # acts on a truncated request, so the sink does not count it as received.
            self.close_connection = True
            return
        request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                          time.monotonic())
        reply, name = sink._receive(request)
        delay = sink.delay if reply.delay is None else reply.delay
        if delay:
            time.sleep(delay)
        if reply.body is None:
            payload: bytes = json.dumps({"id": name, "url": f"https://hooks.example.test/posts/{name}"}).encode()
        elif isinstance(reply.body, bytes):
            payload = reply.body
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
        else:
            payload = json.dumps(reply.body).encode()
        try:
            if reply.drop:
                # A status line and half a body, then the socket closes: the client sees a broken answer.
                self.wfile.write(f"HTTP/1.1 {reply.status} OK\r\nContent-Length: {len(payload) + 100}\r\n\r\n"
                                 .encode() + payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its own timeout, or it was killed): nothing left to answer.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    """A started sink, stopped after the test."""
    with WebhookSink() as sink:
        yield sink


def use_webhooks(home: Path, sink: WebhookSink, names: Sequence[str], *,
                 settings: Mapping[str, Mapping[str, Any]] | None = None, secret: str | None = SECRET,
                 languages: Sequence[str] | None = None) -> None:
    """Point every phase of the home's whatsapp-outage playbook at webhook channels `names` on `sink`.

    Each channel posts to /<name>, signed with ${WEBHOOK_SECRET}; `secret` goes to the home's .env
    (None leaves the variable unset). `settings` adds or overrides a channel's settings.
    """
    channels = {
        name: {"type": "webhook", "url": sink.url(name), "secret": "${WEBHOOK_SECRET}",
               **({"languages": list(languages)} if languages else {}), **(settings or {}).get(name, {})}
        for name in names
    }
    (home / "channels.yaml").write_text(yaml.safe_dump({"channels": channels}, sort_keys=False))
    path = home / "playbooks" / "whatsapp-outage.yaml"
    playbook = yaml.safe_load(path.read_text(encoding="utf-8"))
    playbook["phases"] = {phase: {"channels": list(names)} for phase in playbook["phases"]}
    path.write_text(yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False), encoding="utf-8")
    if secret is not None:
        (home / ".env").write_text(f"WEBHOOK_SECRET={secret}\n")
