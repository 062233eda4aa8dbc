"""`type: email`: one message per customer of a CSV list, over SMTP through a pool of reused connections."""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import html
import os
import re
import socket
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.utils import format_datetime, parseaddr
from functools import cached_property, lru_cache
from itertools import groupby
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import quote

import aiosmtplib
from pydantic import Field, SecretStr, field_validator, model_validator

from playbook import secrets
from playbook.limits import Characters, Limit
from playbook.publishers.base import (
    ChannelConfig,
    ChannelContext,
    CheckResult,
    Delivery,
    Failure,
    Receipt,
)
from playbook.publishers.listed import ListedPublisher
from playbook.textsafe import text_only

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
# A subject is one line in an inbox; past this it is a body pasted in the wrong block.
SUBJECT_LIMIT = 200
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def email_address(text: str) -> str:
    """`text` as an address to send to (an international domain in ASCII), or ValueError saying what is wrong."""
    # A list is read twice per send and checking a domain is most of the validator's time, while a list
    # holds few distinct domains: a plain local part (the validator keeps it as it is) with a domain
    # already found valid skips the rest. Anything else, errors included, goes through the validator.
    plain_local, lowered_names, max_length = _validator_rules()
    local, at, domain = text.partition("@")
    if at and plain_local.match(local) and local.lower() not in lowered_names:
        forms = _domain_forms(domain)
        if forms is not None:
            address = f"{local}@{forms[1]}"
            # The validator's length rule, on each form of the address it checks.
            if max(len(text.encode()), len(f"{local}@{forms[0]}".encode()), len(address)) <= max_length:
                return address
    return _validated(text)


@lru_cache(maxsize=1)
def _validator_rules() -> tuple[re.Pattern[str], frozenset[str], int]:
    """The validator's own rules for a plain local part, the mailbox names it lower-cases, the longest address."""
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH

    return DOT_ATOM_TEXT, frozenset(CASE_INSENSITIVE_MAILBOX_NAMES), EMAIL_MAX_LENGTH


def _validated(text: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    if not text:
        raise ValueError("no address")
    try:
        # Without SMTPUTF8 every address fits in plain headers and envelopes; non-ASCII domains become xn--.
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        reason = str(exc).rstrip(".").replace("The email address", "it")
        raise ValueError(reason[:1].lower() + reason[1:]) from None
    return str(result.ascii_email)


@lru_cache(maxsize=4096)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """The (normalized, ASCII) forms of a valid address domain; None when the validator refuses it."""
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(f"x@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return str(result.domain), str(result.ascii_domain)


def _mailbox(value: str) -> tuple[str, str]:
    """("Name", "address") of a "Name <address>" or a bare address, checked."""
    name, address = parseaddr(value)
    if not address:
        raise ValueError(f"'{value}' is not an address: write \"Name <address@example.com>\" or address@example.com")
    try:
        return " ".join(name.split()), email_address(address)
    except ValueError as exc:
        raise ValueError(f"'{address}' is not an email address ({exc})") from None


class EmailConfig(ChannelConfig):
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    reply_to: str | None = None
    recipients: str = Field(min_length=1, description="CSV file, relative to the home")
    connections: int = Field(default=4, ge=1, le=50)
    rate: float | None = Field(default=None, gt=0, description="At most this many messages per second")
    unsubscribe: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None

    @field_validator("from_", "reply_to")
    @classmethod
    def _check_mailbox(cls, value: str | None) -> str | None:
        if value is not None:
            _mailbox(value)
        return value

    @field_validator("unsubscribe")
    @classmethod
    def _unsubscribe(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "mailto:")):
            raise ValueError(f"'{value}' must be an https:// or mailto: link ({{email}} is the recipient's address)")
        # It goes into a header line as written: a line break in it would start a header of its own.
        if value is not None and not all(c.isprintable() and not c.isspace() for c in value):
            raise ValueError(f"{value!r} must be one link, without spaces or line breaks")
        return value

    @model_validator(mode="after")
    def _login(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise ValueError(f"{missing}: the login needs both username and password (or neither)")
        return self


class EmailPublisher(ListedPublisher[EmailConfig]):
    """Sends each recipient their own message, in their language, through `connections` kept-open connections."""

    address_column = "email"
    address_kind = "an email address"

    Config = EmailConfig
    blocks = ("title", "body")
    optional_blocks = ("html",)
    deduplicates = False
    idempotency = ("SMTP has no idempotency key: a message the server accepted just before the process stopped, "
                   "not yet recorded, is sent again by resume (at most one per connection in flight)")
    # Four round trips (MAIL, RCPT, DATA, the message) to a relay a few tens of milliseconds away.
    typical_latency = 0.25

    def __init__(self, name: str, config: EmailConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self._local_hostname: str | None = None
        self._slots: list[_Slot] = []
        self._idle: asyncio.Queue[_Slot] | None = None
        # A refusal every further message would meet (wrong password, untrusted certificate): not retried.
        self._fatal: Failure | None = None

    # -- what it needs and accepts ------------------------------------------------------------------
    def limits(self) -> Mapping[str, Limit]:
        return {"title": Characters(SUBJECT_LIMIT)}

    def address(self, text: str) -> str:
        return email_address(text)

    @property
    def port(self) -> int:
        return int(self.config.port or DEFAULT_PORTS[self.config.security])

    def _path(self, setting: str) -> Path:
        path = Path(str(getattr(self.config, setting)))
        return path if path.is_absolute() else self.context.home / path

    def validate(self) -> list[str]:
        problems = super().validate()
        if self.config.ca_file is not None and not self._path("ca_file").is_file():
            problems.append(f"setting 'ca_file': {self.config.ca_file} does not exist")
        return problems

    def warnings(self) -> list[str]:
        found = super().warnings()
        if self.config.security == "none" and self.config.username is not None and self.config.host not in LOOPBACK:
            found.insert(0, "setting 'security': none sends the password unencrypted; use starttls or ssl")
        if self.config.verify_tls is False and self.config.security != "none":
            found.insert(0, "setting 'verify_tls': false accepts any certificate, so anyone on the way can read "
                            "the password and the messages; prefer 'ca_file'")
        return found

    @cached_property
    def sender(self) -> tuple[str, str]:
        """The From name and address, checked when the channel was loaded."""
        return _mailbox(self.config.from_)

    @cached_property
    def _sender_domain(self) -> str:
        return self.sender[1].rpartition("@")[2]

    @cached_property
    def _from_header(self) -> bytes:
        return _header("From", *self.sender)

    @cached_property
    def _reply_to_header(self) -> bytes:
        return _header("Reply-To", *_mailbox(self.config.reply_to or ""))

    def settings(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json", by_alias=True, exclude={"type"}, exclude_none=True)

    # -- the message ---------------------------------------------------------------------------------
    def message_bytes(self, delivery: Delivery) -> tuple[bytes, str]:
        """The message for one recipient (CRLF line ends) and its Message-ID: text and HTML parts, list headers."""
        assert delivery.recipient is not None
        recipient = delivery.recipient
        blocks = delivery.message
        # One draw of randomness for both: 128 bits make the Message-ID unique, 64 the boundary.
        token = os.urandom(24).hex()
        message_id = f"<{token[:32]}@{self._sender_domain}>"
        # Quoted-printable never produces "=_", so no part can contain the boundary.
        boundary = f"=_{token[32:]}".encode()
        # Only ASCII whitespace is collapsed: the no-break spaces of French typography (« : », « ! ») stay.
        subject = _ASCII_SPACES.sub(" ", blocks.block("title")).strip(" ")
        text = blocks.block("body")
        page = blocks.block("html") or body_to_html(text)
        message = [
            self._from_header,
            _address_header("To", text_only(" ".join(recipient.fields.get("name", "").split())), recipient.address),
            _subject_header(subject),
            _date_header(int(time.time())),
            b"Message-ID: ", message_id.encode(), b"\r\n",
            _language_header(delivery.lang),
            # Out-of-office replies from thousands of customers would bury the support inbox.
            b"Auto-Submitted: auto-generated\r\n",
        ]
        if self.config.reply_to:
            message.append(self._reply_to_header)
        if self.config.unsubscribe:
            link = self.config.unsubscribe.replace("{email}", _quoted_address(recipient.address))
            message.append(_unsubscribe_header(link))
            if link.startswith("https://"):
                message.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        message += [b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="', boundary, b'"\r\n',
                    b"\r\n--", boundary, _PLAIN_PART, _quoted_printable(text + "\n"),
                    b"\r\n--", boundary, _HTML_PART, _quoted_printable(html_document(page, delivery.lang, subject)),
                    b"\r\n--", boundary, b"--\r\n"]
        return b"".join(message), message_id

    # -- the network ---------------------------------------------------------------------------------
    def _client(self, local_hostname: str | None = None, *, timed: bool = True) -> aiosmtplib.SMTP:
        password = self.config.password.get_secret_value() if self.config.password is not None else None
        return aiosmtplib.SMTP(
            hostname=self.config.host, port=self.port, username=self.config.username, password=password,
            local_hostname=local_hostname, timeout=self.config.timeout.total_seconds() if timed else None,
            use_tls=self.config.security == "ssl", start_tls=self.config.security == "starttls",
            validate_certs=self.config.verify_tls,
            cert_bundle=str(self._path("ca_file")) if self.config.ca_file else None,
        )

    async def open(self) -> None:
        # Every connection says the same EHLO name; looking it up once spares a DNS query per connection.
        self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        self._slots = [_Slot() for _ in range(self.config.connections)]
        self._idle = asyncio.Queue()
        for slot in self._slots:
            self._idle.put_nowait(slot)

    async def close(self) -> None:
        for slot in self._slots:
            if slot.connection is not None:
                await slot.connection.quit()
        self._slots, self._idle = [], None

    async def check(self) -> CheckResult:
        client = self._client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            return CheckResult(False, self._connect_failure(exc).reason)
        try:
            tls = client.transport.get_extra_info("ssl_object") if client.transport is not None else None
            how = str(tls.version()) if tls is not None else "unencrypted"
            who = "login accepted" if self.config.username else "no login configured"
            return CheckResult(True, f"{self.config.host}:{self.port} answers ({how}, {who}); nothing was sent")
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        if self._fatal is not None:
            return self._fatal
        if delivery.recipient is None:
            return Failure("an email channel sends to the recipients of its list, not to a channel", retryable=False)
        if self._idle is None:
            await self.open()
        assert self._idle is not None
        data, message_id = self.message_bytes(delivery)
        slot = await self._idle.get()
        idle = False
        try:
            outcome, idle = await self._send(slot, delivery.recipient.address, data)
        finally:
            # A connection left mid-transaction (an error, or the engine's timeout cancelling us) is not reused.
            if not idle and slot.connection is not None:
                slot.connection.close()
                slot.connection = None
            self._idle.put_nowait(slot)
        if isinstance(outcome, Failure):
            return outcome
        return Receipt(remote_id=message_id, note=outcome)

    async def _send(self, slot: _Slot, address: str, data: bytes) -> tuple[str | Failure, bool]:
        """One SMTP transaction: (the server's answer, or a Failure; whether the connection is idle again)."""
        connection = slot.connection
        reused = connection is not None and connection.is_open
        if connection is None or not reused:
            connected = await self._connect()
            if isinstance(connected, Failure):
                return connected, False
            slot.connection = connection = connected
        sender = self.sender[1]
        # The message is built with CRLF line ends only; "." opening a line is doubled so it cannot end DATA.
        body = data.replace(b"\n.", b"\n..") + b".\r\n"
        steps = ((b"MAIL FROM:<" + sender.encode("ascii") + b">\r\n", _MAIL_OK),
                 (b"RCPT TO:<" + address.encode("ascii") + b">\r\n", _RCPT_OK),
                 (b"DATA\r\n", _DATA_OK), (body, _MESSAGE_OK))
        try:
            try:
                step, reply = await connection.exchange(steps)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused or connection.step > 0:
                    raise
                # Servers close idle connections when they like; nothing of this message was sent yet.
                connection.close()
                slot.connection = None
                connected = await self._connect()
                if isinstance(connected, Failure):
                    return connected, False
                slot.connection = connection = connected
                step, reply = await connection.exchange(steps)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Failure(f"the connection to {self.config.host}:{self.port} failed: {_said(exc)}",
                           retryable=True), False
        # 421: the server is closing the connection.
        usable = reply.code != 421
        if step == 0:
            return _refused(reply, f"the sender {sender}", per_recipient=False), usable
        if step == 1:
            return _refused(reply, "the recipient"), usable and await _reset(slot)
        if step == 2:
            return _refused(reply, "the message", per_recipient=False), usable and await _reset(slot)
        if reply.code not in _MESSAGE_OK:
            return _refused(reply, "the message", per_recipient=False), usable
        return secrets.excerpt(f"{reply.code} {reply.message}"), True

    async def _connect(self) -> _Connection | Failure:
        """A connection ready for MAIL (TLS and login done by aiosmtplib), or the Failure that prevented it."""
        # The engine bounds each publish with the channel's timeout; a timer per SMTP command would only add cost.
        client = self._client(self._local_hostname, timed=False)
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            failure = self._connect_failure(exc)
            if not failure.retryable:
                self._fatal = failure
            return failure
        assert client.transport is not None
        return _Connection(client.transport)

    def _connect_failure(self, exc: BaseException) -> Failure:
        """What a failed connect, TLS handshake or login means, naming the setting to fix (never its value)."""
        where = f"{self.config.host}:{self.port}"
        channel = f"channel '{self.name}'"
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return Failure(f"{where} refused the login ({exc.code} {exc.message}): check the settings 'username' "
                           f"and 'password' of {channel}", retryable=False)
        cert = _cause(exc, ssl.SSLCertVerificationError)
        if cert is not None:
            return Failure(f"TLS certificate of {where} not trusted ({cert.verify_message}): set 'ca_file' of "
                           f"{channel} to its CA certificate", retryable=False)
        tls = _cause(exc, ssl.SSLError)
        if tls is not None:
            return Failure(f"no TLS session with {where} ({tls.reason or tls}): check the settings 'security' and "
                           f"'port' of {channel} (starttls is usually 587, ssl 465)", retryable=False)
        if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return Failure(f"{where} did not answer in time", retryable=True, unreachable=True)
        if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500:
            return Failure(f"{where} refused us ({exc.code} {exc.message})", retryable=False)
        if isinstance(exc, aiosmtplib.SMTPResponseException | OSError):
            return Failure(f"cannot reach {where}: {_said(exc)}", retryable=True, unreachable=True)
        # STARTTLS or AUTH missing from the server: the settings do not match it.
        return Failure(f"{where}: {_said(exc)}; check the settings 'security' and 'username' of {channel}",
                       retryable=False)


def _refused(reply: aiosmtplib.SMTPResponse | aiosmtplib.SMTPResponseException, what: str, *,
             per_recipient: bool = True) -> Failure:
    """SMTP's 4xx is "try later", 5xx "never": a 5xx for a recipient is theirs alone, not the channel's."""
    said = f"{reply.code} {' '.join(reply.message.split())}"
    if reply.code < 500:
        return Failure(f"{what} was deferred by the server ({said})", retryable=True)
    return Failure(f"{what} was refused by the server ({said})", retryable=False, rejected=per_recipient)


async def _reset(slot: _Slot) -> bool:
    """RSET after a refused recipient or DATA, so the connection can carry the next message; False if it cannot."""
    if slot.connection is None:
        return False
    try:
        _, reply = await slot.connection.exchange(((b"RSET\r\n", _MAIL_OK),))
    except (aiosmtplib.SMTPException, OSError):
        return False
    return reply.code in _MAIL_OK


# The replies that let a transaction go on: to MAIL, RCPT (251: forwarded), DATA (354: go ahead), the message.
_MAIL_OK = frozenset({250})
_RCPT_OK = frozenset({250, 251})
_DATA_OK = frozenset({354})
_MESSAGE_OK = frozenset({250})
# A longer reply is a broken or hostile server: the connection is dropped rather than its reply kept.
_MAX_REPLY = 32 * 1024


class _Slot:
    """One of the channel's `connections`: the connection it holds now, if any."""

    def __init__(self) -> None:
        self.connection: _Connection | None = None


class _Connection(asyncio.Protocol):
    """An SMTP connection opened by aiosmtplib (TLS, login), then driven here one transaction at a time.

    Each reply is answered from data_received as it arrives, so a message wakes the sending coroutine once.
    aiosmtplib wakes it for each of the four commands, behind a lock and a timer each: for a long list that
    took three times the CPU of this, more than rendering and building the messages.
    """

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        # A TCP or TLS transport, which writes (aiosmtplib types it as the base class).
        self.transport = cast(asyncio.Transport, transport)
        # The step of the exchange under way: where a lost connection left it.
        self.step = 0
        self._steps: tuple[tuple[bytes, frozenset[int]], ...] = ()
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, aiosmtplib.SMTPResponse]] | None = None
        transport.set_protocol(self)

    @property
    def is_open(self) -> bool:
        return not self.transport.is_closing()

    def exchange(self, steps: tuple[tuple[bytes, frozenset[int]], ...]
                 ) -> asyncio.Future[tuple[int, aiosmtplib.SMTPResponse]]:
        """Write each step's command once the one before got one of its replies: (the last step, its reply)."""
        waiter: asyncio.Future[tuple[int, aiosmtplib.SMTPResponse]] = asyncio.get_running_loop().create_future()
        self.step, self._steps, self._waiter = 0, steps, waiter
        del self._buffer[:]
        if self.transport.is_closing():
            waiter.set_exception(aiosmtplib.SMTPServerDisconnected("Connection lost"))
        else:
            self.transport.write(steps[0][0])
        return waiter

    async def quit(self) -> None:
        """QUIT politely, briefly: every outcome is already recorded."""
        if self.is_open:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await asyncio.wait_for(self.exchange(((b"QUIT\r\n", frozenset({221})),)), 2)
        self.close()

    def close(self) -> None:
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            # Nothing asked: a server's parting "421" before it closes, seen again through connection_lost.
            return
        self._buffer += data
        if len(self._buffer) > _MAX_REPLY:
            waiter.set_exception(aiosmtplib.SMTPResponseException(-1, "Response too long"))
            self.close()
            return
        try:
            reply = _reply(self._buffer)
        except ValueError as exc:
            waiter.set_exception(aiosmtplib.SMTPResponseException(-1, str(exc)))
            self.close()
            return
        if reply is None:
            return
        del self._buffer[:]
        if reply.code in self._steps[self.step][1] and self.step + 1 < len(self._steps):
            self.step += 1
            self.transport.write(self._steps[self.step][0])
        else:
            waiter.set_result((self.step, reply))

    def eof_received(self) -> bool:
        # False: the transport closes, and connection_lost tells the waiter.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
            lost.__cause__ = exc
            waiter.set_exception(lost)
            # Marked as seen: a waiter given up by its sender must not be reported as "never retrieved".
            waiter.exception()


def _reply(buffer: bytearray) -> aiosmtplib.SMTPResponse | None:
    """The complete reply in `buffer` (a multiline one joined with newlines), None while it is partial.

    ValueError when a line does not start with a reply code.
    """
    if not buffer.endswith(b"\n"):
        return None
    last = buffer.rfind(b"\n", 0, -1) + 1
    if buffer[last + 3 : last + 4] == b"-":
        return None
    if last == 0 and buffer[:3].isdigit():
        # The usual one-line reply, without the list-making below.
        return aiosmtplib.SMTPResponse(int(buffer[:3]), buffer[4:].strip().decode("utf-8", "surrogateescape"))
    lines = bytes(buffer).splitlines()
    if not all(line[:3].isdigit() for line in lines):
        shown = bytes(buffer).decode("utf-8", "replace").strip()
        raise ValueError(f"Malformed SMTP response: {secrets.excerpt(shown)}")
    message = "\n".join(line[4:].strip(b" \t").decode("utf-8", "surrogateescape") for line in lines)
    return aiosmtplib.SMTPResponse(int(lines[-1][:3]), message)


def _said(exc: BaseException) -> str:
    """The gist of an error: the operating system's words for a network error, else the library's."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno and not isinstance(seen, ssl.SSLError):
            return os.strerror(seen.errno).lower()
        seen = seen.__cause__ or seen.__context__
    message = exc.message if isinstance(exc, aiosmtplib.SMTPException) else str(exc)
    return " ".join(str(message).split()).rstrip(".") or type(exc).__name__


E = TypeVar("E", bound=BaseException)


def _cause(exc: BaseException, kind: type[E]) -> E | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# -- headers and bodies ---------------------------------------------------------------------------------

_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_PRINTABLE = re.compile(r"[ -~]*")
# 45 bytes of UTF-8 make 60 characters of base64: with "=?utf-8?b?" and "?=", a 72-character encoded word.
_WORD_BYTES = 45
_ASCII_SPACES = re.compile(r"[ \t\r\n\f\v]+")


def _address_header(field: str, name: str, address: str) -> bytes:
    """`To: Name <address>`, the name quoted or RFC 2047-encoded as it needs: one is built per recipient."""
    if not name:
        return f"{field}: {address}\r\n".encode()
    if len(field) + len(name) + len(address) < 72:
        if _PLAIN_NAME.fullmatch(name):
            return f"{field}: {name} <{address}>\r\n".encode()
        if _PRINTABLE.fullmatch(name):
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            return f'{field}: "{quoted}" <{address}>\r\n'.encode()
    encoded = name.encode("utf-8")
    if len(encoded) <= _WORD_BYTES:
        word = binascii.b2a_base64(encoded, newline=False).decode()
        return f"{field}: =?utf-8?b?{word}?=\r\n <{address}>\r\n".encode()
    # Long names are rare: the email package splits them into several encoded words.
    return _header(field, name, address)


def _header(field: str, name: str, address: str) -> bytes:
    folded = policy.SMTP.header_factory(field, [Address(display_name=name, addr_spec=address)])
    return str(folded.fold(policy=policy.SMTP)).encode("ascii")


@lru_cache(maxsize=64)
def _subject_header(subject: str) -> bytes:
    """The Subject line, folded at 78 columns; words with accents as RFC 2047 encoded words."""
    if not subject.isascii():
        # header.fold() rather than policy.fold_binary(), which leaves some accented words unencoded on 3.11.
        return str(policy.SMTP.header_factory("Subject", subject).fold(policy=policy.SMTP)).encode("ascii")
    # The email package would move a long ASCII subject whole to a second line, which some readers show
    # with a leading space.
    lines = ["Subject:"]
    for word in subject.split(" "):
        if len(lines[-1]) + 1 + len(word) > 78 and lines[-1] != "Subject:":
            lines.append("")
        lines[-1] += f" {word}"
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


_PLAIN_PART = b'\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
_HTML_PART = b'\r\nContent-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'


@lru_cache(maxsize=4)
def _date_header(second: int) -> bytes:
    """The Date line, zone +0000 (RFC 5322 lists "GMT" as obsolete): the same within one second."""
    return f"Date: {format_datetime(datetime.fromtimestamp(second, UTC))}\r\n".encode()


def _unsubscribe_header(link: str) -> bytes:
    """List-Unsubscribe with lines of at most 78 characters: RFC 2369 has readers ignore whitespace inside
    the angle brackets, so a long link is folded inside them."""
    line = f"List-Unsubscribe: <{link}>"
    if len(line) <= 78:
        return f"{line}\r\n".encode()
    value, lines = f"<{link}>", ["List-Unsubscribe:"]
    while value:
        lines.append(" " + value[:77])
        value = value[77:]
    return ("\r\n".join(lines) + "\r\n").encode()


@lru_cache(maxsize=64)
def _language_header(lang: str) -> bytes:
    return f"Content-Language: {_token(lang)}\r\n".encode()


# Characters quote() leaves as they are, and "@", which it writes %40.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_.~-]+@[A-Za-z0-9_.~-]+")


def _quoted_address(address: str) -> str:
    """quote(address, safe=""), at a fraction of its cost for the usual address."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address.replace("@", "%40")
    return quote(address, safe="")


def _quoted_printable(text: str) -> bytes:
    """`text` as quoted-printable with CRLF line ends, encoded line by line.

    The lines of a template's output recur from one recipient to the next: each is encoded once and its
    encoding reused. Encoded lines are never longer than 76 characters, as when the text is encoded whole.
    """
    return b"\r\n".join(map(_quoted_printable_line, _lf(text).split("\n")))


@lru_cache(maxsize=4096)
def _quoted_printable_line(line: str) -> bytes:
    return binascii.b2a_qp(line.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


@lru_cache(maxsize=64)
def _token(lang: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", lang) or "und"


_LINK = re.compile(r"https?://[^\s<>\"]*[^\s<>\".,;:!?)\]'»]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _linked(line: str) -> str:
    """One line of text as HTML: escaped, with its web links and email addresses made clickable."""
    out: list[str] = []
    last = 0
    for match in _LINK.finditer(line):
        out.append(html.escape(line[last:match.start()], quote=False))
        target = match.group(0)
        href = target if target.startswith("http") else f"mailto:{target}"
        out.append(f'<a href="{html.escape(href)}">{html.escape(target, quote=False)}</a>')
        last = match.end()
    out.append(html.escape(line[last:], quote=False))
    return "".join(out)


def body_to_html(text: str) -> str:
    """The text body as safe HTML: paragraphs at blank lines, "- " lines as a list, links clickable."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        for listed, run in groupby(lines, key=lambda line: line.startswith(("- ", "• "))):
            if listed:
                pieces.append("<ul>\n" + "\n".join(f"<li>{_linked(item[2:].strip())}</li>" for item in run)
                              + "\n</ul>")
            else:
                pieces.append("<p>" + "<br>\n".join(_linked(line) for line in run) + "</p>")
    return "\n".join(pieces)


def html_document(fragment: str, lang: str, title: str) -> str:
    """A complete HTML page around a fragment (a template's html block is usually a fragment)."""
    if fragment.lstrip()[:14].lower().startswith(("<!doctype", "<html")):
        return fragment
    return (f'<!DOCTYPE html>\n<html lang="{_token(lang)}">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title, quote=False)}</title>\n</head>\n<body>\n{fragment}\n</body>\n</html>\n")

