"""`type: sms`: one text message per person of a CSV list, in their language, through Twilio's own client.

Texts are sent in GSM-7 whenever they can be: a GSM-7 segment holds 160 characters, a UCS-2 one only 70,
and a single curly apostrophe is enough to switch a whole message to UCS-2 and multiply its price. So with
`normalise: gsm7` (the default) typography that GSM-7 lacks becomes its plain form (’ → ', « » → ",
no-break spaces → spaces, … → ..., – — → -, œ → oe), and when that is not enough, letters with an accent
GSM-7 lacks (ê, â, î, ô, û, ë, ï, ç, À...) lose it: é, è, à, ù keep theirs, GSM-7 has them. A text that
still needs UCS-2 (an emoji, another script) is sent exactly as written: degrading it would save nothing.
`normalise: none` sends every text as written. Limits, `render` and `validate` measure the text as sent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from playbook import secrets
from playbook.publishers.base import (
    ChannelConfig,
    CheckResult,
    Delivery,
    Failure,
    Receipt,
)
from playbook.publishers.limits import Limit, Measure, is_gsm7, sms_segments
from playbook.publishers.listed import ListedPublisher
from playbook.publishers.recipients import phone_number

# Every host the Twilio client writes into its URLs (api., messaging., with or without a region or edge).
TWILIO_URL = re.compile(r"^https://[A-Za-z0-9.-]+\.twilio\.com(?=/|$)")
TWILIO_HOST = "api.twilio.com"
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
E164 = re.compile(r"\+[1-9]\d{6,14}")
# Alphanumeric sender IDs: up to 11 letters, digits and spaces, with at least one letter.
ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
CURRENCY = re.compile(r"[A-Z]{3}")

AUTH_CODES = frozenset({20003})
RATE_CODES = frozenset({20429})
# The recipient's number alone is refused: invalid, not a mobile, or they texted STOP.
REJECTED_CODES = {21211: "not a valid phone number", 21614: "not a mobile number",
                  21610: "the recipient has unsubscribed (they replied STOP)"}
# The sender is refused: every further message would meet the same answer.
SENDER_CODES = frozenset({21212, 21606, 21659, 21660})
GEO_CODES = frozenset({21408})

# Typography that GSM-7 lacks, and its plain form; guillemets are handled with their inner spaces first.
TYPOGRAPHY = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "«": '"', "»": '"',
    "\u00a0": " ", "\u202f": " ", "\u2002": " ", "\u2003": " ", "\u2007": " ", "\u2009": " ", "\u200a": " ",
    "\t": " ", "\u200b": "", "\u2060": "", "\ufeff": "", "\u00ad": "",
    "\u2026": "...",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2022": "-", "\u00b7": "-",
    "œ": "oe", "Œ": "OE",
})
GUILLEMETS = re.compile(r"«\s*|\s*»")


@dataclass(frozen=True)
class SmsText:
    """A text as it will be sent, and the accented letters it lost on the way (e.g. "ê→e, ç→c")."""

    text: str
    simplified: str = ""


def prepare(text: str, normalise: str = "gsm7") -> SmsText:
    """The text to send: GSM-7 when typography or accents are all that stand in the way, else as written."""
    if normalise == "none" or is_gsm7(text):
        return SmsText(text)
    plain = GUILLEMETS.sub('"', text).translate(TYPOGRAPHY)
    if is_gsm7(plain):
        return SmsText(plain)
    folded = "".join(_base_letter(ch) for ch in plain)
    if not is_gsm7(folded):
        return SmsText(text)
    lost = dict.fromkeys(f"{ch}→{_base_letter(ch)}" for ch in plain if _base_letter(ch) != ch)
    return SmsText(folded, ", ".join(lost))


def _base_letter(ch: str) -> str:
    """`ch` without its accent when GSM-7 has the bare letter but not the accented one."""
    if is_gsm7(ch):
        return ch
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    return base if base and base != ch and is_gsm7(base) else ch


def _shown(ch: str) -> str:
    """A character as a reader can spot it: 'ê', or U+00A0 (no-break space) for the invisible ones."""
    if ch.isprintable() and not ch.isspace():
        return f"'{ch}'"
    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'control character').lower()})"


def _money(amount: Decimal) -> str:
    """0.07, 0.0079, 1,234.50: cents always, more digits only when a price per segment has them."""
    if amount >= 1:
        return f"{amount:,.2f}"
    shown = f"{amount.quantize(Decimal('0.0001')):f}".rstrip("0")
    whole, _, cents = shown.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


@dataclass(frozen=True)
class SmsCost:
    """Segments of an SMS as it will be sent (normalised), and its price alone and for the whole list."""

    limit: int = 3
    normalise: str = "gsm7"
    cost_per_segment: Decimal | None = None
    currency: str = "EUR"
    recipients: int | None = None
    name: str = "SMS segments"

    def measure(self, text: str) -> Measure:
        sms = prepare(text, self.normalise)
        segments, encoding, units = sms_segments(sms.text)
        detail = [f"{encoding}, {units} units"]
        if sms.simplified:
            detail.append(f"accents simplified: {sms.simplified}")
        elif encoding == "UCS-2":
            detail.append(f"{_shown(next(ch for ch in sms.text if not is_gsm7(ch)))} is not in GSM-7")
            if self.normalise == "none":
                could, gsm_encoding, _ = sms_segments(prepare(text).text)
                if gsm_encoding == "GSM-7":
                    detail.append(f"normalise: gsm7 would send {could} segment(s)")
        if self.cost_per_segment is not None:
            each = segments * self.cost_per_segment
            detail.append(f"≈ {_money(each)} {self.currency} each")
            if self.recipients:
                detail.append(f"≈ {_money(each * self.recipients)} {self.currency} for {self.recipients:,} "
                              "recipients")
        return Measure(segments, self.limit, "segments", ", ".join(detail))


def sender_kind(value: str) -> str:
    """"number", "service" or "alphanumeric" for a valid `from`; ValueError saying what is expected."""
    if E164.fullmatch(value):
        return "number"
    if SERVICE_SID.fullmatch(value):
        return "service"
    if ALPHANUMERIC_SENDER.fullmatch(value):
        return "alphanumeric"
    raise ValueError(f"'{value}' is not a sender: write a Twilio number with + and the country code "
                     "(+33700000000), a messaging service SID (MG followed by 32 hex digits) or an "
                     "alphanumeric sender ID (up to 11 letters and digits)")


class SmsConfig(ChannelConfig):
    account_sid: SecretStr = Field(description="The Twilio Account SID (AC...)")
    auth_token: SecretStr
    from_: str = Field(alias="from", description="A Twilio number, a messaging service SID or a sender ID")
    recipients: str = Field(min_length=1, description="CSV file with a 'phone' column, relative to the home")
    api_base: AnyHttpUrl | None = Field(default=None, description="Another Twilio API host: a mock or a proxy")
    connections: int = Field(default=4, ge=1, le=100)
    rate: float | None = Field(default=None, gt=0, description="At most this many messages per second")
    max_segments: int = Field(default=3, ge=1, le=10)
    cost_per_segment: Decimal | None = Field(default=None, ge=0, description="Price of one segment, for estimates")
    currency: str = "EUR"
    normalise: Literal["gsm7", "none"] = "gsm7"

    @field_validator("account_sid")
    @classmethod
    def _account_sid(cls, value: SecretStr) -> SecretStr:
        if not ACCOUNT_SID.fullmatch(value.get_secret_value()):
            raise ValueError("not a Twilio Account SID: AC followed by 32 hex digits (Twilio console, Account Info)")
        return value

    @field_validator("from_")
    @classmethod
    def _sender(cls, value: str) -> str:
        sender_kind(value)
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not CURRENCY.fullmatch(value):
            raise ValueError(f"'{value}' is not a currency code: three capital letters, such as EUR or USD")
        return value


class RoutedHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Twilio's own aiohttp client, sending its *.twilio.com calls to `api_base` and bounding each in time."""

    def __init__(self, api_base: str | None, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self.api_base = api_base.rstrip("/") if api_base else None

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> Any:
        if self.api_base is not None:
            url = TWILIO_URL.sub(self.api_base, url, count=1)
        # Twilio's client passes no timeout of its own, which aiohttp would take as "wait for ever".
        return await super().request(method, url, params=params, data=data, headers=headers, auth=auth,
                                     timeout=timeout if timeout is not None else self.timeout,
                                     allow_redirects=allow_redirects)


class SmsPublisher(ListedPublisher[SmsConfig]):
    """Texts each person of the list the `short` block in their language, `connections` requests at a time."""

    address_column = "phone"
    address_kind = "an international phone number"

    Config = SmsConfig
    blocks = ("short",)
    typical_latency = 0.4
    idempotency = ("Twilio takes no idempotency key: an SMS whose answer was lost (a timeout, a killed run) may "
                   "have gone out and is sent again, at most one per connection in flight")

    _client: Any = None
    _http: RoutedHttpClient | None = None
    # A refusal every further message would meet (credentials, sender): the rest of the list fails at once.
    _fatal: Failure | None = None

    # -- what it needs and accepts ------------------------------------------------------------------
    def limits(self) -> Mapping[str, Limit]:
        cost = self.config.cost_per_segment
        return {"short": SmsCost(
            limit=int(self.config.max_segments), normalise=str(self.config.normalise),
            cost_per_segment=None if cost is None else Decimal(str(cost)), currency=str(self.config.currency),
            recipients=self.valid_recipients if cost is not None else None,
        )}

    def address(self, text: str) -> str:
        return phone_number(text)

    @cached_property
    def valid_recipients(self) -> int:
        """Numbers that will be texted (valid, each once): what the cost estimate multiplies."""
        return 0 if self.reading.problems else self.reading.recipients

    def settings(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json", by_alias=True, exclude={"type"}, exclude_none=True)

    @property
    def host(self) -> str:
        return urlsplit(str(self.config.api_base)).netloc if self.config.api_base else TWILIO_HOST

    # -- the network ---------------------------------------------------------------------------------
    def _new_client(self) -> tuple[Any, RoutedHttpClient]:
        """A Twilio client for this account, its calls routed to `api_base` (Twilio itself by default)."""
        http = RoutedHttpClient(str(self.config.api_base) if self.config.api_base else None,
                                self.config.timeout.total_seconds())
        client = Client(self.config.account_sid.get_secret_value(), self.config.auth_token.get_secret_value(),
                        http_client=http)
        return client, http

    async def open(self) -> None:
        self._client, self._http = self._new_client()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._client = self._http = None

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        if self._fatal is not None:
            return self._fatal
        if delivery.recipient is None:
            return Failure("an sms channel texts the people of its list, not a channel", retryable=False)
        sms = prepare(delivery.message.block("short"), self.config.normalise)
        if not sms.text.strip():
            return Failure("the 'short' block is empty for this recipient: nothing to text", retryable=False)
        segments, encoding, _ = sms_segments(sms.text)
        if segments > self.config.max_segments:
            # The plan measured a sample recipient; this one's own fields (a long name) made it longer.
            return Failure(f"the text for this recipient is {segments} {encoding} segments, over max_segments "
                           f"{self.config.max_segments}", retryable=False)
        if self._client is None:
            await self.open()
        sender = self.config.from_
        fields: dict[str, Any] = {"to": delivery.recipient.address, "body": sms.text}
        fields["messaging_service_sid" if sender_kind(sender) == "service" else "from_"] = sender
        if self.config.normalise == "none":
            # Twilio's Smart Encoding would rewrite what was asked to go out as written.
            fields["smart_encoded"] = False
        try:
            message = await self._client.messages.create_async(**fields)
        except TwilioException as exc:
            failure = self._failure(exc)
            status, code, _ = _said(exc)
            if status == 401 or code in AUTH_CODES or code in SENDER_CODES:
                self._fatal = failure
            return failure
        except TimeoutError:
            return Failure(f"{self.host} did not answer in time", retryable=True)
        except (aiohttp.ClientError, OSError) as exc:
            return Failure(f"cannot reach {self.host}: {type(exc).__name__}", retryable=True)
        parts = getattr(message, "num_segments", None) or segments
        return Receipt(remote_id=message.sid, note=f"{message.status}, {parts} {encoding} segment(s)")

    def _failure(self, exc: Exception) -> Failure:
        """What Twilio's refusal means: retry what may pass, stop what will not, name what to fix."""
        status, code, said = _said(exc)
        channel = f"channel '{self.name}'"
        if status == 401 or code in AUTH_CODES:
            return Failure(f"Twilio refused the credentials ({said}): copy the Account SID and Auth Token from the "
                           f"Twilio console (Account Info) into the variables that 'account_sid' and 'auth_token' "
                           f"of {channel} name", retryable=False)
        if status == 429 or code in RATE_CODES:
            return Failure(f"Twilio rate limit reached ({said})", retryable=True)
        if status >= 500:
            return Failure(f"Twilio server error ({said})", retryable=True)
        if code in REJECTED_CODES:
            return Failure(f"Twilio refused the number: {REJECTED_CODES[code]} ({said})", retryable=False,
                           rejected=True)
        if code in SENDER_CODES:
            return Failure(f"Twilio refused the sender ({said}): set 'from' of {channel} to a number or messaging "
                           "service of this account", retryable=False)
        if code in GEO_CODES:
            return Failure(f"Twilio may not text this country ({said}): allow it in the Twilio console, "
                           "Messaging > Settings > Geo permissions", retryable=False)
        return Failure(f"Twilio refused the message ({said})", retryable=False)

    async def check(self) -> CheckResult:
        client, http = self._new_client()
        sid = self.config.account_sid.get_secret_value()
        sender = self.config.from_
        try:
            account = await client.api.v2010.accounts(sid).fetch_async()
            if account.status != "active":
                return CheckResult(False, f"the Twilio account '{account.friendly_name}' is {account.status}")
            kind = sender_kind(sender)
            if kind == "service":
                service = await client.messaging.v1.services(sender).fetch_async()
                origin = f"messaging service '{service.friendly_name}'"
            elif kind == "number":
                numbers = await client.api.v2010.account.incoming_phone_numbers.list_async(phone_number=sender,
                                                                                           limit=1)
                if not numbers:
                    return CheckResult(False, f"the Twilio account '{account.friendly_name}' has no number {sender}:"
                                              f" set 'from' of channel '{self.name}' to one of its numbers")
                origin = f"number {sender}"
            else:
                origin = f"sender ID '{sender}' (the API cannot check these: see Twilio's country rules)"
        except TwilioException as exc:
            return CheckResult(False, self._failure(exc).reason)
        except TimeoutError:
            return CheckResult(False, f"{self.host} did not answer in time")
        except (aiohttp.ClientError, OSError) as exc:
            return CheckResult(False, f"cannot reach {self.host}: {type(exc).__name__}")
        finally:
            await http.close()
        return CheckResult(True, f"Twilio account '{account.friendly_name}', {origin}; nothing was sent")


def _said(exc: Exception) -> tuple[int, int | None, str]:
    """(HTTP status, Twilio error code, "HTTP 400, error 21211: what Twilio said") of a Twilio error."""
    status = int(getattr(exc, "status", 0) or 0)
    code = getattr(exc, "code", None)
    words = str(getattr(exc, "detail", None) or getattr(exc, "msg", None) or getattr(exc, "title", None) or "")
    words = secrets.excerpt(re.sub(r"^Unable to (create|fetch|read) records?:?\s*", "", words))
    said = f"HTTP {status}" + (f", error {code}" if code and code != status else "") + (f": {words}" if words else "")
    return status, code if isinstance(code, int) else None, said
