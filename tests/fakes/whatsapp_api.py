"""A fake WhatsApp Business Cloud API (Graph API) on 127.0.0.1, answering as Meta does.

POST /v21.0/<phone_number_id>/messages takes template messages (the template and its languages checked,
one body variable without line breaks), POST .../whatsapp_business_profile sets the "about" text (139
characters at most), GET /v21.0/<phone_number_id>?fields=... describes the number. The bearer token is
checked first (error 190). Scripts are per path: `fake.script(fake.messages_path, throttled())`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.fakes.provider import Answer, ProviderFake, Received

VERSION = "v21.0"
PARAMETER_LIMIT = 1024
ABOUT_LIMIT = 139


def graph_error(status: int, code: int, message: str, *, subcode: int | None = None, kind: str = "OAuthException",
                details: str | None = None, headers: dict[str, str] | None = None) -> Answer:
    """The Graph API's error answer: {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code,
                             "fbtrace_id": "A" + secrets.token_urlsafe(16)}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return Answer(status, {"error": error}, headers or {})


def token_expired() -> Answer:
    return graph_error(401, 190, "Error validating access token: Session has expired on Tuesday, 24-Nov-26 "
                                 "10:00:00 PST. The current time is Wednesday, 25-Nov-26 05:12:00 PST.", subcode=463)


def throughput_limited() -> Answer:
    return graph_error(400, 130429, "Rate limit hit", details="Cloud API message throughput has been reached.")


def account_limited(minutes: int) -> Answer:
    """Error 80007, with the Business Use Case header saying when calls may resume."""
    usage = {"102290129340398": [{"type": "whatsapp_business_management", "call_count": 100, "total_cputime": 3,
                                  "total_time": 4, "estimated_time_to_regain_access": minutes}]}
    return graph_error(400, 80007, "(#80007) There have been too many calls to this WhatsApp Business account.",
                       headers={"x-business-use-case-usage": json.dumps(usage)})


def unavailable() -> Answer:
    return graph_error(503, 131016, "Service unavailable", details="A service is temporarily unavailable.")


@dataclass(frozen=True)
class Sent:
    to: str
    template: str
    language: str
    text: str
    message_id: str
    at: float


class FakeWhatsApp(ProviderFake):
    """One business number (`phone_number_id`) with `templates` ({name: language codes}), reached with `token`."""

    def __init__(self, token: str, phone_number_id: str, templates: dict[str, Iterable[str]],
                 not_on_whatsapp: Iterable[str] = ()) -> None:
        super().__init__()
        self.token = token
        self.phone_number_id = phone_number_id
        self.templates = {name: set(codes) for name, codes in templates.items()}
        self.not_on_whatsapp = set(not_on_whatsapp)
        self.sent: list[Sent] = []
        self.about: list[str] = []

    @property
    def api_base(self) -> str:
        return f"{self.url}/{VERSION}"

    @property
    def messages_path(self) -> str:
        return f"/{VERSION}/{self.phone_number_id}/messages"

    @property
    def profile_path(self) -> str:
        return f"/{VERSION}/{self.phone_number_id}/whatsapp_business_profile"

    def answer(self, request: Received) -> Answer:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        match = re.fullmatch(rf"/{re.escape(VERSION)}/(\w+)(?:/(\w+))?", request.path)
        if match is None:
            return graph_error(400, 2500, "Unknown path components", kind="OAuthException")
        if match.group(1) != self.phone_number_id:
            return graph_error(400, 100, f"Unsupported post request. Object with ID '{match.group(1)}' does not "
                                         "exist, cannot be loaded due to missing permissions, or does not support "
                                         "this operation.", subcode=33, kind="GraphMethodException")
        edge = match.group(2)
        if edge is None and request.method == "GET":
            return Answer(200, {"display_phone_number": "+33 6 12 34 56 78", "verified_name": "Example Support",
                                "id": self.phone_number_id})
        payload = request.json if request.body else {}
        if edge == "whatsapp_business_profile" and request.method == "POST":
            about = str(payload.get("about", ""))
            if len(about) > ABOUT_LIMIT or payload.get("messaging_product") != "whatsapp":
                return graph_error(400, 100, "(#100) Param about must be at most 139 characters long.")
            with self._lock:
                self.about.append(about)
            return Answer(200, {"success": True})
        if edge == "messages" and request.method == "POST":
            return self._message(payload, request.at)
        return graph_error(400, 100, "Unsupported request")

    def _message(self, payload: dict[str, Any], at: float) -> Answer:
        template = payload.get("template") or {}
        name, language = str(template.get("name")), str((template.get("language") or {}).get("code"))
        if payload.get("messaging_product") != "whatsapp" or payload.get("type") != "template":
            return graph_error(400, 100, "(#100) Invalid parameter")
        if language not in self.templates.get(name, set()):
            return graph_error(404, 132001, "(#132001) Template name does not exist in the translation",
                               details=f"template name ({name}) does not exist in {language}")
        parameters = [p for c in template.get("components", []) if c.get("type") == "body"
                      for p in c.get("parameters", [])]
        if len(parameters) != 1:
            return graph_error(400, 132000, "(#132000) Number of parameters does not match the expected number of "
                                            "params")
        text = str(parameters[0].get("text", ""))
        if re.search(r"[\n\t]| {5}", text) or len(text) > PARAMETER_LIMIT:
            return graph_error(400, 132018, "(#132018) There was an issue with the parameters in your template.",
                               details="Param text cannot have new-line/tab characters or more than 4 "
                                       "consecutive spaces")
        to = str(payload.get("to", ""))
        if to in self.not_on_whatsapp:
            return graph_error(400, 131026, "Message undeliverable", details="Message Undeliverable.")
        message_id = "wamid.HBgL" + secrets.token_hex(12).upper()
        with self._lock:
            self.sent.append(Sent(to, name, language, text, message_id, at))
        return Answer(200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                            "messages": [{"id": message_id, "message_status": "accepted"}]})
