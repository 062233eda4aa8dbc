"""`type: email`: one message per customer of a CSV list, over SMTP through a pool of reused connections."""

from __future__ import annotations

import asyncio
import binascii
import html
import os
import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from email import policy
from email.headerregistry import Address
from email.utils import formatdate, make_msgid, parseaddr
from functools import cached_property, lru_cache
from itertools import groupby
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiosmtplib
from pydantic import Field, SecretStr, field_validator, model_validator

from playbook.limits import Characters, Limit
from playbook.publishers.base import (
    ChannelConfig,
    ChannelContext,
    CheckResult,
    Delivery,
    Failure,
    Publisher,
    Receipt,
    Recipient,
)
from playbook.recipients import RecipientList

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
# A subject is one line in an inbox; past this it is a body pasted in the wrong block.
SUBJECT_LIMIT = 200
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def email_address(text: str) -> str:
    """`text` as an address to send to (an international domain in ASCII), or ValueError saying what is wrong."""
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


class EmailPublisher(Publisher[EmailConfig]):
    """Sends each recipient their own message, in their language, through `connections` kept-open connections."""

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
        self._clients: list[aiosmtplib.SMTP] = []
        self._idle: asyncio.Queue[aiosmtplib.SMTP] | None = None
        # A refusal every further message would meet (wrong password, untrusted certificate): not retried.
        self._fatal: Failure | None = None
        self._warnings: list[str] | None = None

    # -- what it needs and accepts ------------------------------------------------------------------
    def limits(self) -> Mapping[str, Limit]:
        return {"title": Characters(SUBJECT_LIMIT)}

    @property
    def per_recipient(self) -> bool:
        return True

    @property
    def concurrency(self) -> int:
        return int(self.config.connections)

    @property
    def rate(self) -> float | None:
        """Messages per second at most, read by the engine's rate limiter."""
        return self.config.rate

    @property
    def port(self) -> int:
        return int(self.config.port or DEFAULT_PORTS[self.config.security])

    def _path(self, setting: str) -> Path:
        path = Path(str(getattr(self.config, setting)))
        return path if path.is_absolute() else self.context.home / path

    def recipient_list(self) -> RecipientList:
        return RecipientList(self._path("recipients"), str(self.config.recipients), "email", email_address,
                             "an email address")

    def recipients(self) -> Iterator[Recipient]:
        return iter(self.recipient_list())

    def recipient_count(self) -> int | None:
        return self.recipient_list().count()

    def validate(self) -> list[str]:
        problems = self.recipient_list().problems()
        if self.config.ca_file is not None and not self._path("ca_file").is_file():
            problems.append(f"setting 'ca_file': {self.config.ca_file} does not exist")
        return problems

    def warnings(self) -> list[str]:
        if self._warnings is None:
            found = self.recipient_list().warnings()
            if (self.config.security == "none" and self.config.username is not None
                    and self.config.host not in LOOPBACK):
                found.insert(0, "setting 'security': none sends the password unencrypted; use starttls or ssl")
            if self.config.verify_tls is False and self.config.security != "none":
                found.insert(0, "setting 'verify_tls': false accepts any certificate, so anyone on the way can read "
                                "the password and the messages; prefer 'ca_file'")
            self._warnings = found
        return self._warnings

    @cached_property
    def sender(self) -> tuple[str, str]:
        """The From name and address, checked when the channel was loaded."""
        return _mailbox(self.config.from_)

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
        message_id = make_msgid(domain=self.sender[1].rpartition("@")[2])
        subject = " ".join(blocks.block("title").split())
        text = blocks.block("body")
        page = blocks.block("html") or body_to_html(text)
        head = [
            self._from_header,
            _address_header("To", " ".join(recipient.fields.get("name", "").split()), recipient.address),
            _subject_header(subject),
            f"Date: {formatdate(usegmt=True)}\r\n".encode(),
            f"Message-ID: {message_id}\r\n".encode(),
            f"Content-Language: {_token(delivery.lang)}\r\n".encode(),
            # Out-of-office replies from thousands of customers would bury the support inbox.
            b"Auto-Submitted: auto-generated\r\n",
        ]
        if self.config.reply_to:
            head.append(self._reply_to_header)
        if self.config.unsubscribe:
            link = self.config.unsubscribe.replace("{email}", quote(recipient.address, safe=""))
            head.append(f"List-Unsubscribe: <{link}>\r\n".encode())
            if link.startswith("https://"):
                head.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        # Quoted-printable never produces "=_", so no part can contain the boundary.
        boundary = "=_" + os.urandom(12).hex()
        head.append(f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode())
        parts = b"".join(
            f"\r\n--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
            + binascii.b2a_qp(_lf(content).encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
            for subtype, content in (("plain", text + "\n"), ("html", html_document(page, delivery.lang, subject)))
        )
        return b"".join(head) + parts + f"\r\n--{boundary}--\r\n".encode(), message_id

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
        local = await asyncio.to_thread(socket.getfqdn)
        # The engine bounds each publish with the channel's timeout; a timer per SMTP command would only add cost.
        self._clients = [self._client(local, timed=False) for _ in range(self.config.connections)]
        self._idle = asyncio.Queue()
        for client in self._clients:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        for client in self._clients:
            if client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), 2)
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()
        self._clients, self._idle = [], None

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
        client = await self._idle.get()
        idle = False
        try:
            outcome, idle = await self._send(client, delivery.recipient.address, data)
        finally:
            # A connection left mid-transaction (an error, or the engine's timeout cancelling us) is not reused.
            if not idle:
                client.close()
            self._idle.put_nowait(client)
        if isinstance(outcome, Failure):
            return outcome
        return Receipt(remote_id=message_id, note=outcome)

    async def _send(self, client: aiosmtplib.SMTP, address: str, data: bytes) -> tuple[str | Failure, bool]:
        """One SMTP transaction: (the server's answer, or a Failure; whether the connection is idle again)."""
        reused = client.is_connected
        failure = None if reused else await self._connect(client)
        if failure is not None:
            return failure, False
        try:
            try:
                reply = await self._command(client, b"MAIL FROM:", self.sender[1])
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # Servers close idle connections when they like; nothing of this message was sent yet.
                client.close()
                failure = await self._connect(client)
                if failure is not None:
                    return failure, False
                reply = await self._command(client, b"MAIL FROM:", self.sender[1])
            if reply.code != 250:
                return _refused(reply, f"the sender {self.sender[1]}", per_recipient=False), reply.code != 421
            reply = await self._command(client, b"RCPT TO:", address)
            if reply.code not in (250, 251):
                return _refused(reply, "the recipient"), await _reset(client)
            response = await client.data(data)
        except aiosmtplib.SMTPDataError as exc:
            return _refused(exc, "the message", per_recipient=False), exc.code != 421
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Failure(f"the connection to {self.config.host}:{self.port} failed: {_said(exc)}",
                           retryable=True), False
        return f"{response.code} {response.message}"[:200], True

    @staticmethod
    async def _command(client: aiosmtplib.SMTP, verb: bytes, address: str) -> aiosmtplib.SMTPResponse:
        # MAIL and RCPT written directly: the library's versions re-parse the (already checked) address each time.
        return await client.execute_command(verb + b"<" + address.encode("ascii") + b">")

    async def _connect(self, client: aiosmtplib.SMTP) -> Failure | None:
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            failure = self._connect_failure(exc)
            if not failure.retryable:
                self._fatal = failure
            return failure
        return None

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
            return Failure(f"{where} did not answer in time", retryable=True)
        if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500:
            return Failure(f"{where} refused us ({exc.code} {exc.message})", retryable=False)
        if isinstance(exc, aiosmtplib.SMTPResponseException | OSError):
            return Failure(f"cannot reach {where}: {_said(exc)}", retryable=True)
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


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """RSET after a refused recipient, so the connection can carry the next message; False if it cannot."""
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        return False
    return True


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


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


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

