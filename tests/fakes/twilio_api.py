"""A fake Twilio REST API on 127.0.0.1: the endpoints Twilio's Python client calls to text and to check.

Accounts, IncomingPhoneNumbers and Messages (API 2010-04-01) and Messaging Services (v1), with HTTP Basic
auth checked against the account SID and auth token, form-encoded POSTs, and answers shaped like Twilio's:
resources in snake_case JSON, errors as {"code", "message", "more_info", "status"}. Messages can be
scripted to fail in order (`queue`) or for one number always (`refuse`); every request is recorded.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

ERROR_DOCS = "https://www.twilio.com/docs/errors/{code}"
# GSM 03.38, basic and extension tables: enough for the fake to count segments the way carriers do.
_GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
                 "¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXTENDED = set("^{}\\[~]|€\f")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


@dataclass(frozen=True)
class Answer:
    """A canned answer to the next message; status None creates the message as Twilio would."""

    status: int | None = None
    body: dict[str, Any] | None = None
    # Seconds to wait before answering; the message is created first, as when Twilio sends but the answer is lost.
    delay: float = 0.0

    @classmethod
    def error(cls, status: int, code: int, message: str) -> Answer:
        return cls(status, {"code": code, "message": message, "more_info": ERROR_DOCS.format(code=code),
                            "status": status})

    @classmethod
    def rate_limited(cls) -> Answer:
        return cls.error(429, 20429, "Too Many Requests")

    @classmethod
    def server_error(cls, status: int = 500) -> Answer:
        return cls.error(status, 20500, "Internal Server Error")

    @classmethod
    def invalid_number(cls, number: str) -> Answer:
        return cls.error(400, 21211, f"Invalid 'To' Phone Number: {number}")

    @classmethod
    def unsubscribed(cls) -> Answer:
        return cls.error(400, 21610, "Attempt to send to unsubscribed recipient")

    @classmethod
    def slow(cls, delay: float) -> Answer:
        return cls(delay=delay)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


def segments(text: str) -> int:
    """Segments of an SMS body: GSM-7 160/153 septets, else UCS-2 70/67 code units."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
        units, single, multi = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text), 160, 153
    else:
        units, single, multi = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // multi)


class FakeTwilio:
    """One Twilio account with its numbers and messaging services; a context manager that runs the server."""

    def __init__(self, account_sid: str, auth_token: str, numbers: tuple[str, ...] = ("+33700000001",),
                 services: dict[str, str] | None = None, friendly_name: str = "Example Support",
                 status: str = "active") -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = numbers
        self.services = services or {}
        self.friendly_name = friendly_name
        self.status = status
        self.messages: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self._queue: deque[Answer] = deque()
        self._refused: dict[str, Answer] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-twilio", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def queue(self, *answers: Answer) -> None:
        """Answer the next message requests with these, in order, whoever they are to."""
        with self._lock:
            self._queue.extend(answers)

    def refuse(self, number: str, answer: Answer) -> None:
        """Answer every message to `number` with `answer`."""
        with self._lock:
            self._refused[number] = answer

    def posts(self) -> list[Recorded]:
        """Every request to create a message, created or not."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")]

    def texts(self) -> dict[str, list[str]]:
        """The bodies of the messages created, by recipient number."""
        found: dict[str, list[str]] = {}
        with self._lock:
            for message in self.messages:
                found.setdefault(message["to"], []).append(message["body"])
        return found

    def __enter__(self) -> FakeTwilio:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- what the handler asks ------------------------------------------------------------------------
    def handle(self, record: Recorded, authorization: str) -> tuple[int, dict[str, Any], float]:
        """(status, JSON body, delay before answering) for one request."""
        with self._lock:
            self.requests.append(record)
        if not self._authorized(authorization):
            return _error(401, 20003, "Authenticate")
        account = f"/2010-04-01/Accounts/{self.account_sid}"
        path = record.path
        if record.method == "GET" and path == account + ".json":
            return 200, self._account(), 0.0
        if record.method == "GET" and path == account + "/IncomingPhoneNumbers.json":
            wanted = record.query.get("PhoneNumber")
            found = [self._number(n) for n in self.numbers if wanted in (None, n)]
            return 200, _page("incoming_phone_numbers", path, found), 0.0
        if record.method == "POST" and path == account + "/Messages.json":
            return self._create(record.form)
        match = re.fullmatch(r"/v1/Services/(MG[0-9a-f]{32})", path)
        if record.method == "GET" and match:
            name = self.services.get(match.group(1))
            if name is None:
                return _error(404, 20404, f"The requested resource {path} was not found")
            return 200, {"sid": match.group(1), "account_sid": self.account_sid, "friendly_name": name}, 0.0
        return _error(404, 20404, f"The requested resource {path} was not found")

    def _authorized(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any], float]:
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        with self._lock:
            answer = self._refused.get(to) or (self._queue.popleft() if self._queue else Answer())
        if answer.status is not None:
            return answer.status, answer.body or {}, answer.delay
        if not _E164.fullmatch(to):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if sender is None and service is None:
            return _error(400, 21603, "The 'From' phone number is required")
        if sender is not None and _E164.fullmatch(sender) and sender not in self.numbers:
            return _error(400, 21659, f"'From' {sender} is not a Twilio phone number or Short Code country "
                                      "mismatch")
        if service is not None and service not in self.services:
            return _error(400, 21701, "The Messaging Service Sid is invalid")
        if not body:
            return _error(400, 21602, "Message body is required")
        if len(body) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit")
        sid = "SM" + secrets.token_hex(16)
        message = {
            "sid": sid, "account_sid": self.account_sid, "to": to, "from": sender, "messaging_service_sid": service,
            "body": body, "status": "accepted" if service else "queued", "num_segments": str(segments(body)),
            "num_media": "0", "direction": "outbound-api", "api_version": "2010-04-01", "price": None,
            "price_unit": "USD", "error_code": None, "error_message": None,
            "smart_encoded": form.get("SmartEncoded"),
            "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        with self._lock:
            self.messages.append(message)
        return 201, message, answer.delay

    def _account(self) -> dict[str, Any]:
        return {"sid": self.account_sid, "friendly_name": self.friendly_name, "status": self.status,
                "type": "Full", "owner_account_sid": self.account_sid,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}.json"}

    def _number(self, number: str) -> dict[str, Any]:
        return {"sid": "PN" + secrets.token_hex(16), "account_sid": self.account_sid, "phone_number": number,
                "friendly_name": number, "capabilities": {"sms": True, "voice": True, "mms": False}}


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any], float]:
    return status, {"code": code, "message": message, "more_info": ERROR_DOCS.format(code=code),
                    "status": status}, 0.0


def _page(key: str, path: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: items, "page": 0, "page_size": 50, "start": 0, "end": max(0, len(items) - 1),
            "first_page_uri": f"{path}?PageSize=50&Page=0", "next_page_uri": None, "previous_page_uri": None,
            "uri": f"{path}?PageSize=50&Page=0"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    fake: FakeTwilio


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        parts = urlsplit(self.path)
        record = Recorded(
            self.command, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
            {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()},
            {k.lower(): v for k, v in self.headers.items()},
        )
        status, body, delay = self.server.fake.handle(record, self.headers.get("authorization", ""))
        if delay:
            time.sleep(delay)
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return None
