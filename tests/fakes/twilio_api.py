"""A fake Twilio REST API on 127.0.0.1: the endpoints Twilio's Python client calls to text and to check.

Accounts, IncomingPhoneNumbers and Messages (API 2010-04-01) and Messaging Services (v1), with HTTP Basic
auth checked against the account SID and auth token, form-encoded POSTs, and answers shaped like Twilio's:
resources in snake_case JSON, errors as {"code", "message", "more_info", "status"}. Messages can be
scripted to fail in order (`queue`) or for one number always (`refuse`); every request is recorded.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any

from tests.fakes import provider
from tests.fakes.provider import ProviderFake, Received

ERROR_DOCS = "https://www.twilio.com/docs/errors/{code}"
# GSM 03.38, basic and extension tables: enough for the fake to count segments the way carriers do.
_GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
                 "¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXTENDED = set("^{}\\[~]|€\f")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
# The route of the requests that create a message: they share one script, whoever they are to.
MESSAGES = "messages"


class Answer(provider.Answer):
    """Twilio's answers to a message: `twilio.queue(Answer.rate_limited())`, `twilio.refuse(number, ...)`."""

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


def segments(text: str) -> int:
    """Segments of an SMS body: GSM-7 160/153 septets, else UCS-2 70/67 code units."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
        units, single, multi = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text), 160, 153
    else:
        units, single, multi = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // multi)


class FakeTwilio(ProviderFake):
    """One Twilio account with its numbers and messaging services; a context manager that runs the server."""

    def __init__(self, account_sid: str, auth_token: str, numbers: tuple[str, ...] = ("+33700000001",),
                 services: dict[str, str] | None = None, friendly_name: str = "Example Support",
                 status: str = "active") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = numbers
        self.services = services or {}
        self.friendly_name = friendly_name
        self.status = status
        self.messages: list[dict[str, Any]] = []
        self._refused: dict[str, Answer] = {}

    @property
    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def queue(self, *answers: provider.Answer) -> None:
        """Answer the next message requests with these, in order, whoever they are to."""
        self.script(MESSAGES, *answers)

    def refuse(self, number: str, answer: Answer) -> None:
        """Answer every message to `number` with `answer`."""
        with self._lock:
            self._refused[number] = answer

    def route(self, request: Received) -> str:
        if request.method == "POST" and request.path == self.messages_path:
            to = request.form.get("To")
            # A refused number's message leaves the queued answers to the others.
            return f"refused {to}" if to in self._refused else MESSAGES
        return request.path

    def posts(self) -> list[Received]:
        """Every request to create a message, created or not."""
        with self._lock:
            return [r for r in self.received if r.method == "POST" and r.path.endswith("/Messages.json")]

    def texts(self) -> dict[str, list[str]]:
        """The bodies of the messages created, by recipient number."""
        found: dict[str, list[str]] = {}
        with self._lock:
            for message in self.messages:
                found.setdefault(message["to"], []).append(message["body"])
        return found

    def answer(self, request: Received) -> Answer:
        if not self._authorized(request.headers.get("authorization", "")):
            return Answer.error(401, 20003, "Authenticate")
        account = f"/2010-04-01/Accounts/{self.account_sid}"
        path = request.path
        if request.method == "GET" and path == account + ".json":
            return Answer(200, self._account())
        if request.method == "GET" and path == account + "/IncomingPhoneNumbers.json":
            wanted = request.query.get("PhoneNumber")
            found = [self._number(n) for n in self.numbers if wanted in (None, n)]
            return Answer(200, _page("incoming_phone_numbers", path, found))
        if request.method == "POST" and path == self.messages_path:
            return self._create(request.form)
        match = re.fullmatch(r"/v1/Services/(MG[0-9a-f]{32})", path)
        if request.method == "GET" and match:
            name = self.services.get(match.group(1))
            if name is None:
                return Answer.error(404, 20404, f"The requested resource {path} was not found")
            return Answer(200, {"sid": match.group(1), "account_sid": self.account_sid, "friendly_name": name})
        return Answer.error(404, 20404, f"The requested resource {path} was not found")

    def _authorized(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    def _create(self, form: dict[str, str]) -> Answer:
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        with self._lock:
            refused = self._refused.get(to)
        if refused is not None:
            return refused
        if not _E164.fullmatch(to):
            return Answer.invalid_number(to)
        if sender is None and service is None:
            return Answer.error(400, 21603, "The 'From' phone number is required")
        if sender is not None and _E164.fullmatch(sender) and sender not in self.numbers:
            return Answer.error(400, 21659, f"'From' {sender} is not a Twilio phone number or Short Code country "
                                            "mismatch")
        if service is not None and service not in self.services:
            return Answer.error(400, 21701, "The Messaging Service Sid is invalid")
        if not body:
            return Answer.error(400, 21602, "Message body is required")
        if len(body) > 1600:
            return Answer.error(400, 21617, "The concatenated message body exceeds the 1600 character limit")
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
        return Answer(201, message)

    def _account(self) -> dict[str, Any]:
        return {"sid": self.account_sid, "friendly_name": self.friendly_name, "status": self.status,
                "type": "Full", "owner_account_sid": self.account_sid,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}.json"}

    def _number(self, number: str) -> dict[str, Any]:
        return {"sid": "PN" + secrets.token_hex(16), "account_sid": self.account_sid, "phone_number": number,
                "friendly_name": number, "capabilities": {"sms": True, "voice": True, "mms": False}}


def _page(key: str, path: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: items, "page": 0, "page_size": 50, "start": 0, "end": max(0, len(items) - 1),
            "first_page_uri": f"{path}?PageSize=50&Page=0", "next_page_uri": None, "previous_page_uri": None,
            "uri": f"{path}?PageSize=50&Page=0"}
