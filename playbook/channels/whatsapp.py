"""`type: whatsapp`: the backup WhatsApp number writes to each urgent contact through the Cloud API.

Outside a conversation WhatsApp only delivers approved templates, so each contact gets the `template`
with the `short` block as its one body variable ({{1}}). With `update_about`, the first delivery of each
post also sets the business profile's "about" text to the `short` block, cut to WhatsApp's 139 characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from playbook import secrets
from playbook.publishers.base import (
    ChannelConfig,
    CheckResult,
    Delivery,
    Failure,
    Receipt,
)
from playbook.publishers.http import (
    HttpPublisher,
    failure_from_exception,
    failure_from_response,
    host_of,
    json_of,
    retry_at_from,
    retry_at_in,
)
from playbook.publishers.limits import Limit, Measure
from playbook.publishers.listed import ListedPublisher
from playbook.publishers.recipients import phone_number

GRAPH_API = "https://graph.facebook.com/v21.0"
# A template's body variable, when the template has a header, footer or buttons too; and the profile's "about".
PARAMETER_LIMIT = 1024
ABOUT_LIMIT = 139
# Tabs and runs of spaces, which a template variable may not hold; no-break spaces (French typography) stay.
_SPACES = re.compile(r"[ \t]+")
_SENTENCE_END = re.compile(r"[.!?…](?=\s)")

# Graph API error codes. Rate limits (app, business account, throughput, spam, pair) pass with time.
RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131048, 131056})
TEMPORARY_CODES = frozenset({1, 2, 131000, 131016, 133004})
# Refusals of the channel itself (token, permissions, number id): every further message would meet them.
TOKEN_REFUSED = 190
PERMISSION_CODES = frozenset({3, 10, *range(200, 300)})
UNKNOWN_OBJECT = 33
# Refusals of one contact, which no retry changes and which are no fault of the channel.
REJECTED_CODES = {
    131026: "this number cannot receive WhatsApp messages (not on WhatsApp, or an old app)",
    131047: "more than 24 hours since this contact last wrote (re-engagement refused)",
    131050: "this contact has stopped marketing messages from the business",
    130472: "this contact is part of a WhatsApp experiment that holds business messages",
    131030: "this number is not in the test number's allowed list",
    131021: "this is the business's own number",
}


def template_text(text: str) -> str:
    """The block as a template variable: WhatsApp refuses line breaks, tabs and runs of spaces in one."""
    lines = [_SPACES.sub(" ", line).strip(" ") for line in text.strip().splitlines()]
    joined = ""
    for line in filter(None, lines):
        if joined:
            # A line that ends a sentence reads on with a space; otherwise a dash keeps the two apart.
            joined += " " if joined[-1] in ".!?…:;," else " — "
        joined += line
    return joined


def about_text(text: str) -> str:
    """The block as the profile's "about": whole sentences when they fit in 139 characters, else whole words…"""
    flat = template_text(text)
    if len(flat) <= ABOUT_LIMIT:
        return flat
    ends = [m.end() for m in _SENTENCE_END.finditer(flat) if m.end() <= ABOUT_LIMIT]
    if ends and ends[-1] >= ABOUT_LIMIT // 2:
        return flat[: ends[-1]]
    cut = flat[: ABOUT_LIMIT - 1]
    if flat[ABOUT_LIMIT - 1] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:—-") + "…"


@dataclass(frozen=True)
class TemplateCharacters:
    """Characters of a block once made a template variable (line breaks folded): what WhatsApp counts."""

    limit: int = PARAMETER_LIMIT
    name: str = "characters as a template variable"

    def measure(self, text: str) -> Measure:
        return Measure(len(template_text(text)), self.limit, "characters")


class WhatsAppConfig(ChannelConfig):
    phone_number_id: str = Field(min_length=1, description="The sending number's id in WhatsApp Manager")
    access_token: SecretStr = Field(description="A System User token with whatsapp_business_messaging")
    template: str = Field(min_length=1, description="The approved template; its body has one variable, {{1}}")
    template_language: dict[str, str] = Field(
        default_factory=dict, description="Playbook language -> template language code (en: en_US); default: same")
    recipients: str = Field(min_length=1, description="CSV of opt-in contacts, relative to the home: phone, language")
    api_base: AnyHttpUrl = Field(default=AnyHttpUrl(GRAPH_API), description="The Graph API, with its version")
    update_about: bool = Field(default=False, description="Also set the business profile's about text")
    connections: int = Field(default=4, ge=1, le=50, description="Messages in flight at once")

    @field_validator("phone_number_id", mode="before")
    @classmethod
    def _phone_number_id(cls, value: Any) -> Any:
        text = str(value).strip() if isinstance(value, int | str) else value
        if isinstance(text, str) and not text.isdigit():
            raise ValueError(f"'{text}' is not a phone number id: WhatsApp Manager shows it as digits, under "
                             "the number (it is not the phone number itself)")
        return text


class WhatsAppPublisher(ListedPublisher[WhatsAppConfig], HttpPublisher[WhatsAppConfig]):
    """One template message per contact of the list, in the contact's language, `connections` at a time."""

    address_column = "phone"
    address_kind = "an international phone number"

    Config = WhatsAppConfig
    blocks = ("short",)
    typical_latency = 0.5
    idempotency = ("the Cloud API takes no idempotency key: a message WhatsApp accepted just before the process "
                   "stopped, not yet recorded, is sent again by resume (at most one per connection in flight)")

    # A refusal every further message would meet (an expired token): later contacts are not even tried.
    _fatal: Failure | None = None
    # The posts whose profile text is done or in hand: (incident, phase, deadline) names a post.
    _about_posts: set[tuple[str, str, datetime]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._about_posts = set()

    # -- what it needs and accepts ------------------------------------------------------------------
    def limits(self) -> Mapping[str, Limit]:
        return {"short": TemplateCharacters()}

    def address(self, text: str) -> str:
        return phone_number(text)

    def language_code(self, lang: str) -> str:
        return self.config.template_language.get(lang, lang)

    # -- the network ---------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return host_of(str(self.config.api_base))

    def _url(self, *path: str) -> str:
        return "/".join((str(self.config.api_base).rstrip("/"), self.config.phone_number_id, *path))

    def client_options(self) -> dict[str, Any]:
        return {
            "headers": {"authorization": f"Bearer {self.config.access_token.get_secret_value()}"},
            "limits": httpx.Limits(max_connections=self.concurrency + 1),
        }

    async def open(self) -> None:
        self._fatal = None
        await super().open()

    async def _request(self, method: str, url: str, payload: dict[str, Any] | None = None,
                       ) -> httpx.Response | Failure:
        http = await self.http()
        try:
            return await http.request(method, url, json=payload)
        except httpx.HTTPError as exc:
            return failure_from_exception(exc, self.host)

    def payload(self, delivery: Delivery) -> dict[str, Any]:
        assert delivery.recipient is not None
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": delivery.recipient.address,
            "type": "template",
            "template": {
                "name": self.config.template,
                "language": {"code": self.language_code(delivery.lang)},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": template_text(delivery.message.block("short"))}]}],
            },
        }

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        if self._fatal is not None:
            return self._fatal
        about = await self._about_once(delivery)
        answer = await self._request("POST", self._url("messages"), self.payload(delivery))
        if isinstance(answer, Failure):
            return _with_note(answer, about)
        if not answer.is_success:
            failure = self.failure(answer, delivery)
            if _refuses_the_channel(answer):
                self._fatal = failure
            return _with_note(failure, about)
        data = json_of(answer)
        messages = data.get("messages") if isinstance(data, dict) else None
        first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
        status = first.get("message_status")
        notes = [n for n in (about, f"WhatsApp: {status}" if status and status != "accepted" else None) if n]
        return Receipt(remote_id=str(first["id"]) if first.get("id") else None, note="; ".join(notes) or None)

    async def _about_once(self, delivery: Delivery) -> str | None:
        """Set the profile's about text on the post's first delivery; a note on what happened, for its receipt."""
        post = (delivery.incident_id, delivery.phase, delivery.deadline)
        if not self.config.update_about or post in self._about_posts:
            return None
        # Claimed before the first await: the deliveries running beside this one leave the profile alone.
        self._about_posts.add(post)
        text = about_text(delivery.message.block("short"))
        answer = await self._request("POST", self._url("whatsapp_business_profile"),
                                     {"messaging_product": "whatsapp", "about": text})
        if not isinstance(answer, Failure) and answer.is_success:
            return f"profile about set: {text}"
        failure = answer if isinstance(answer, Failure) else self.failure(answer, delivery)
        if failure.retryable:
            # The next delivery tries again.
            self._about_posts.discard(post)
        return f"profile about not set: {failure.reason}"

    def failure(self, response: httpx.Response, delivery: Delivery | None = None) -> Failure:
        """What a Graph API error means: retry limits and outages, reject one contact, stop on the rest."""
        error = _graph_error(response)
        if error is None:
            return failure_from_response(response, "check access_token and phone_number_id")
        code = error.get("code")
        said = secrets.excerpt(str(error.get("message") or ""))
        data = error.get("error_data")
        if isinstance(data, dict) and data.get("details"):
            said = f"{said}: {secrets.excerpt(str(data['details']))}"
        trace = f" (fbtrace_id {error['fbtrace_id']})" if error.get("fbtrace_id") else ""
        label = f"{code}/{error['error_subcode']}" if error.get("error_subcode") else str(code)
        where = f"channel '{self.name}'"
        if code in RATE_LIMIT_CODES or response.status_code == 429:
            retry_at = retry_at_from(response.headers) or _usage_retry_at(response.headers)
            return Failure(f"WhatsApp rate limit (error {label}): {said}", retryable=True, retry_at=retry_at)
        if code in TEMPORARY_CODES or response.status_code >= 500:
            return Failure(f"WhatsApp is unavailable (error {label}, HTTP {response.status_code}): {said}{trace}",
                           retryable=True, retry_at=retry_at_from(response.headers))
        if code in REJECTED_CODES:
            return Failure(f"WhatsApp refused this contact (error {code}): {REJECTED_CODES[code]}", retryable=False,
                           rejected=True)
        if code == TOKEN_REFUSED:
            return Failure(f"WhatsApp refused the access token (error {label}): it expired or was revoked; create a "
                           "System User token with whatsapp_business_messaging in Meta Business Settings and put it "
                           f"in setting 'access_token' of {where}", retryable=False)
        if code in PERMISSION_CODES:
            return Failure(f"the access token lacks a permission (error {label}): give its System User "
                           "whatsapp_business_messaging (and whatsapp_business_management for update_about), on "
                           f"this number's WhatsApp account{trace}", retryable=False)
        if code == 100 and error.get("error_subcode") == UNKNOWN_OBJECT:
            return Failure(f"WhatsApp knows no number with id {self.config.phone_number_id}, or the token cannot "
                           f"use it (error {label}): check setting 'phone_number_id' of {where}", retryable=False)
        if code == 132001:
            lang = self.language_code(delivery.lang) if delivery else "?"
            return Failure(f"template '{self.config.template}' does not exist in language '{lang}' or is not "
                           f"approved (error 132001): check settings 'template' and 'template_language' of {where} "
                           "against WhatsApp Manager", retryable=False)
        if code in (132000, 132012):
            return Failure(f"template '{self.config.template}' does not take the message as its one body variable "
                           f"(error {code}): its body must have exactly one variable, {{{{1}}}}", retryable=False)
        return Failure(f"WhatsApp refused the message (error {label}, HTTP {response.status_code}): {said}{trace}",
                       retryable=False)

    async def check(self) -> CheckResult:
        try:
            answer = await self._request("GET", self._url() + "?fields=display_phone_number,verified_name")
        finally:
            await self.close()
        if isinstance(answer, Failure):
            return CheckResult(False, answer.reason)
        if not answer.is_success:
            return CheckResult(False, secrets.redact(self.failure(answer).reason))
        data = json_of(answer)
        data = data if isinstance(data, dict) else {}
        number = data.get("display_phone_number", self.config.phone_number_id)
        name = f" ({data['verified_name']})" if data.get("verified_name") else ""
        return CheckResult(True, f"sends from {number}{name}; not verified: template '{self.config.template}' and "
                                 "its languages (WhatsApp Manager lists them)")


def _graph_error(response: httpx.Response) -> dict[str, Any] | None:
    """The Graph API's {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}, when it sent one."""
    data = json_of(response)
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _refuses_the_channel(response: httpx.Response) -> bool:
    error = _graph_error(response) or {}
    code = error.get("code")
    return (response.status_code == 401 or code == TOKEN_REFUSED or code in PERMISSION_CODES
            or (code == 100 and error.get("error_subcode") == UNKNOWN_OBJECT))


def _with_note(failure: Failure, note: str | None) -> Failure:
    if note is None:
        return failure
    return Failure(f"{failure.reason}; {note}", failure.retryable, failure.retry_at, failure.rejected)


def _usage_retry_at(headers: httpx.Headers) -> datetime | None:
    """When X-Business-Use-Case-Usage says the account may call again ("estimated_time_to_regain_access", minutes)."""
    try:
        usage = json.loads(headers.get("x-business-use-case-usage", ""))
    except ValueError:
        return None
    entries = [e for v in usage.values() if isinstance(v, list) for e in v] if isinstance(usage, dict) else []
    minutes = [e.get("estimated_time_to_regain_access") for e in entries if isinstance(e, dict)]
    longest = max((m for m in minutes if isinstance(m, int | float)), default=0)
    return retry_at_in(longest * 60) if longest > 0 else None
