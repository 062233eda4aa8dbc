"""The email channel's settings, and the publisher that sends each recipient their own message."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import aiosmtplib
from pydantic import Field, SecretStr, field_validator, model_validator

from playbook.channels.email.addresses import email_address, mailbox
from playbook.channels.email.mime import (
    ASCII_SPACES,
    HTML_PART,
    PLAIN_PART,
    address_header,
    date_header,
    html_document,
    language_header,
    mailbox_header,
    quoted_address,
    quoted_printable,
    subject_header,
    unsubscribe_header,
)
from playbook.channels.email.smtp import Connection, Slot, connect, connect_failure, transaction
from playbook.publishers.base import (
    ChannelConfig,
    ChannelContext,
    CheckResult,
    Delivery,
    Failure,
    Receipt,
)
from playbook.publishers.limits import Characters, Limit
from playbook.publishers.listed import ListedPublisher
from playbook.publishers.text_html import text_to_html
from playbook.textsafe import text_only

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
# A subject is one line in an inbox; past this it is a body pasted in the wrong block.
SUBJECT_LIMIT = 200
LOOPBACK = ("localhost", "127.0.0.1", "::1")


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
    def _checkmailbox(cls, value: str | None) -> str | None:
        if value is not None:
            mailbox(value)
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
        self._slots: list[Slot] = []
        self._idle: asyncio.Queue[Slot] | None = None
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
        return mailbox(self.config.from_)

    @cached_property
    def _where(self) -> str:
        """The server as failures name it."""
        return f"{self.config.host}:{self.port}"

    @cached_property
    def _sender_domain(self) -> str:
        return self.sender[1].rpartition("@")[2]

    @cached_property
    def _from_header(self) -> bytes:
        return mailbox_header("From", *self.sender)

    @cached_property
    def _reply_to_header(self) -> bytes:
        return mailbox_header("Reply-To", *mailbox(self.config.reply_to or ""))

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
        subject = ASCII_SPACES.sub(" ", blocks.block("title")).strip(" ")
        text = blocks.block("body")
        page = blocks.block("html") or text_to_html(text)
        message = [
            self._from_header,
            address_header("To", text_only(" ".join(recipient.fields.get("name", "").split())), recipient.address),
            subject_header(subject),
            date_header(int(time.time())),
            b"Message-ID: ", message_id.encode(), b"\r\n",
            language_header(delivery.lang),
            # Out-of-office replies from thousands of customers would bury the support inbox.
            b"Auto-Submitted: auto-generated\r\n",
        ]
        if self.config.reply_to:
            message.append(self._reply_to_header)
        if self.config.unsubscribe:
            link = self.config.unsubscribe.replace("{email}", quoted_address(recipient.address))
            message.append(unsubscribe_header(link))
            if link.startswith("https://"):
                message.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        message += [b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="', boundary, b'"\r\n',
                    b"\r\n--", boundary, PLAIN_PART, quoted_printable(text + "\n"),
                    b"\r\n--", boundary, HTML_PART, quoted_printable(html_document(page, delivery.lang, subject)),
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
        self._slots = [Slot() for _ in range(self.config.connections)]
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
            outcome, idle = await transaction(slot, self._connect, self.sender[1], delivery.recipient.address, data,
                                              self._where)
        finally:
            # A connection left mid-transaction (an error, or the engine's timeout cancelling us) is not reused.
            if not idle and slot.connection is not None:
                slot.connection.close()
                slot.connection = None
            self._idle.put_nowait(slot)
        if isinstance(outcome, Failure):
            return outcome
        return Receipt(remote_id=message_id, note=outcome)

    async def _connect(self) -> Connection | Failure:
        """A connection ready for MAIL, or the Failure that prevented it (remembered when it would recur)."""
        # The engine bounds each publish with the channel's timeout; a timer per SMTP command would only add cost.
        client = self._client(self._local_hostname, timed=False)
        try:
            return await connect(client)
        except (aiosmtplib.SMTPException, OSError) as exc:
            failure = self._connect_failure(exc)
            if not failure.retryable:
                self._fatal = failure
            return failure

    def _connect_failure(self, exc: BaseException) -> Failure:
        return connect_failure(exc, self._where, f"channel '{self.name}'")
