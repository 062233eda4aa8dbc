"""The base of the messaging providers' fakes: a real HTTP server on 127.0.0.1 that records and can be scripted.

A subclass answers as its provider would (`answer`); `script` queues answers that win over it, in order,
for the requests of one route (`route`: the path by default, the Bot API method for Telegram, the XRPC
method for Bluesky). A scripted answer without a status is the provider's own, sent only after its delay.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import yaml


@dataclass(frozen=True)
class Answer:
    """One HTTP answer. A dict or list body is sent as JSON, str or bytes as is; `delay` in seconds first.

    A content-type in `headers` replaces the one the body implies. Status None, only in a script: the
    provider's own answer, after `delay` (`slow`).
    """

    status: int | None = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def slow(cls, delay: float) -> Self:
        """The provider acts at once (a post is stored) but answers `delay` seconds later, as when an answer is lost."""
        return cls(None, delay=delay)

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            data, content_type = json.dumps(self.body).encode(), "application/json; charset=utf-8"
        elif isinstance(self.body, str):
            data, content_type = self.body.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = (self.body or b""), "text/plain; charset=utf-8"
        return data, next((v for k, v in self.headers.items() if k.lower() == "content-type"), content_type)


@dataclass(frozen=True)
class Received:
    """A request as the fake saw it; headers lower-cased, `at` is time.monotonic() on arrival.

    `epoch` is time.time() on arrival too, to compare with the epoch times providers name (rate-limit resets).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    epoch: float

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        """The form-encoded body, blank values kept."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def params(self) -> dict[str, Any]:
        """What the caller sent: the form or JSON body, else the query."""
        if not self.body:
            return dict(self.query)
        if self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self.form
        found: dict[str, Any] = self.json
        return found


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # Deliveries connect at the same instant: the default backlog of 5 would drop SYNs (1 s retransmits).
    request_queue_size = 128


class ProviderFake:
    """Start with `with`; `url` is where it listens; `received` what came in, scripted or not."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, route: str, *answers: Answer) -> None:
        """Answer the next requests of `route` with these, in order; then as the provider would."""
        with self._lock:
            self._scripts[route].extend(answers)

    def requests(self, route: str | None = None) -> list[Received]:
        with self._lock:
            found = list(self.received)
        return found if route is None else [r for r in found if self.route(r) == route]

    def route(self, request: Received) -> str:
        return request.path

    def answer(self, request: Received) -> Answer:
        """What the provider answers when nothing is scripted."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _serve(self, request: Received) -> tuple[int, Answer]:
        """The status and answer to send: the scripted one, else the provider's (after a scripted delay)."""
        with self._lock:
            self.received.append(request)
            queue = self._scripts.get(self.route(request))
            scripted = queue.popleft() if queue else None
        if scripted is not None and scripted.status is not None:
            return scripted.status, scripted
        answer = self.answer(request)
        if scripted is not None:
            answer = replace(answer, delay=scripted.delay)
        if answer.status is None:
            raise TypeError(f"{type(self).__name__}.answer gave no status for {request.method} {request.path}")
        return answer.status, answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._reply()

            def do_HEAD(self) -> None:
                self._reply()

            def do_POST(self) -> None:
                self._reply()

            def _reply(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                request = Received(self.command, split.path, dict(parse_qsl(split.query)),
                                   {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic(),
                                   time.time())
                status, answer = fake._serve(request)
                if answer.delay and fake._stopping.wait(answer.delay):
                    return
                data, content_type = answer.payload()
                try:
                    self.send_response(status)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(data)))
                    for name, value in answer.headers.items():
                        if name.lower() != "content-type":
                            self.send_header(name, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def add_channel(home: Path, name: str, settings: Mapping[str, Any], *, phases: Iterable[str] | None = None,
                env: Mapping[str, str] | None = None) -> None:
    """Set channel `name` in the home's channels.yaml and list it once in `phases` (default: all) of whatsapp-outage.

    A channel of that name is replaced where it stands. `env` values are appended to the home's .env, where
    ${NAME} settings find them.
    """
    channels_path = home / "channels.yaml"
    data = yaml.safe_load(channels_path.read_text(encoding="utf-8")) or {}
    data.setdefault("channels", {})[name] = dict(settings)
    channels_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    path = home / "playbooks" / "whatsapp-outage.yaml"
    playbook = yaml.safe_load(path.read_text(encoding="utf-8"))
    for phase, spec in playbook["phases"].items():
        if (phases is None or phase in phases) and name not in spec["channels"]:
            spec["channels"] = [*spec["channels"], name]
    path.write_text(yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False), encoding="utf-8")
    if env:
        dotenv = home / ".env"
        existing = dotenv.read_text(encoding="utf-8") if dotenv.exists() else ""
        dotenv.write_text(existing + "".join(f"{key}={value}\n" for key, value in env.items()), encoding="utf-8")
