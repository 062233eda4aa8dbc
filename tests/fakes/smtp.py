"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 in a thread, with STARTTLS (or TLS) and AUTH.

It records every message with the connection it came on, counts connections, and can be scripted:
`refuse(address)` answers 5xx to that recipient every time, `refuse_once(address, 451)` only the first
time, `refuse_data(address, ...)` accepts the recipient and refuses the message after DATA,
`close_after(n)` closes each connection after n messages (as busy mail servers do).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import free_port

# aiosmtpd logs a warning about its own use of a deprecated attribute at every successful login.
logging.getLogger("mail.log").setLevel(logging.ERROR)

# Distinctive, so that a leak into output or the ledger is easy to grep for.
USERNAME = "mailer@example.com"
PASSWORD = "smtp-secret-7c2e91"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, made with openssl: (cert, key)."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


@dataclass(frozen=True)
class Received:
    """One message as the server accepted it: envelope, raw bytes, and on which connection and how."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int
    tls: bool
    login: str | None
    at: float

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)

    def part(self, subtype: str) -> str:
        """The decoded text of the text/<subtype> part, with \n line ends."""
        for part in self.message.walk():
            if part.get_content_type() == f"text/{subtype}":
                return str(part.get_content()).replace("\r\n", "\n")
        raise KeyError(f"no text/{subtype} part")


class _Server(SMTP):
    """aiosmtpd's server, numbering its connections and closing them when the script says so."""

    def __init__(self, handler: _Handler, fake: SmtpServer, number: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.fake = fake
        self.number = number
        self.delivered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:
            self.fake._opened()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.fake._closed()
        super().connection_lost(error)


class _Handler:
    def __init__(self, fake: SmtpServer) -> None:
        self.fake = fake

    async def handle_RCPT(self, server: _Server, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        refusal = self.fake._refusal(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: _Server, session: Session, envelope: Envelope) -> str:
        refusal = self.fake._data_refusal(envelope.rcpt_tos)
        if refusal is not None:
            return refusal
        number = self.fake._record(server, session, envelope)
        server.delivered += 1
        if self.fake.close_every and server.delivered >= self.fake.close_every and server.transport is not None:
            # After the 250 below is written: the client sees its message accepted, then the connection go.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return f"250 2.0.0 Ok: queued as {number}"


class _Controller(Controller):
    def __init__(self, fake: SmtpServer, **kwargs: Any) -> None:
        super().__init__(_Handler(fake), **kwargs)
        self.fake = fake

    def factory(self) -> SMTP:
        return _Server(self.handler, self.fake, self.fake._next_number(), **self.SMTP_kwargs)


class SmtpServer:
    """The server and its script; a context manager. `cert` (cert, key) enables STARTTLS, or TLS if implicit."""

    def __init__(self, *, cert: tuple[Path, Path] | None = None, implicit_tls: bool = False,
                 login: tuple[str, str] | None = (USERNAME, PASSWORD), record: bool = True) -> None:
        self.login = login
        self.record = record
        self.close_every = 0
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._count = 0
        self._refusals: dict[str, tuple[str, bool]] = {}
        self._data_refusals: dict[str, str] = {}
        self.logins: list[tuple[str, bool]] = []
        # (address, reply) of every RCPT the script refused.
        self.refused: list[tuple[str, str]] = []
        self.connections = 0
        self.open_connections = 0
        self.most_at_once = 0
        self.port = free_port()
        context: ssl.SSLContext | None = None
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port, "ready_timeout": 10}
        if implicit_tls:
            kwargs["ssl_context"] = context
        elif context is not None:
            kwargs.update(tls_context=context, require_starttls=True)
        if login is not None:
            # aiosmtpd only knows STARTTLS as TLS: on an implicit-TLS port it must be told AUTH is fine.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=context is not None and not implicit_tls)
        self._controller = _Controller(self, **kwargs)

    host = "127.0.0.1"

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        # Controller.start() opens one connection of its own to see that the server answers.
        with self._lock:
            self.connections = self.most_at_once = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    # -- the script ----------------------------------------------------------------------------------
    def refuse(self, address: str, code: int = 550, text: str = "5.1.1 No such user here") -> None:
        self._refusals[address.lower()] = (f"{code} {text}", False)

    def refuse_once(self, address: str, code: int = 451, text: str = "4.3.0 Try again later") -> None:
        self._refusals[address.lower()] = (f"{code} {text}", True)

    def refuse_data(self, address: str, *lines: str) -> None:
        """Accept `address` as a recipient, then refuse the message itself with `lines` (several: a multiline reply)."""
        self._data_refusals[address.lower()] = "\r\n".join(
            f"{line[:3]}-{line[4:]}" for line in lines[:-1]) + ("\r\n" if len(lines) > 1 else "") + lines[-1]

    def allow(self, address: str) -> None:
        self._refusals.pop(address.lower(), None)

    def close_after(self, messages: int) -> None:
        self.close_every = messages

    # -- what was received ---------------------------------------------------------------------------
    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]

    # -- called from the server's thread --------------------------------------------------------------
    def _next_number(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    def _opened(self) -> None:
        with self._lock:
            self.open_connections += 1
            self.most_at_once = max(self.most_at_once, self.open_connections)

    def _closed(self) -> None:
        with self._lock:
            self.open_connections -= 1

    def _refusal(self, address: str) -> str | None:
        with self._lock:
            found = self._refusals.get(address.lower())
            if found is None:
                return None
            if found[1]:
                del self._refusals[address.lower()]
            self.refused.append((address, found[0]))
            return found[0]

    def _data_refusal(self, addresses: list[str]) -> str | None:
        with self._lock:
            return next((self._data_refusals[a.lower()] for a in addresses if a.lower() in self._data_refusals), None)

    def _record(self, server: _Server, session: Session, envelope: Envelope) -> int:
        with self._lock:
            self._count += 1
            if self.record:
                self._messages.append(Received(
                    mail_from=str(envelope.mail_from), rcpt_tos=tuple(envelope.rcpt_tos),
                    data=envelope.original_content or b"", connection=server.number,
                    tls=_encrypted(server), login=cast(str | None, session.auth_data), at=time.monotonic(),
                ))
            return self._count

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert self.login is not None and isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (user, password) == self.login
        with self._lock:
            self.logins.append((user, ok))
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


def _encrypted(server: SMTP) -> bool:
    return server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
