"""SMTP as the email channel speaks it: aiosmtplib opens each connection (TLS, login), transactions are driven here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import aiosmtplib

from playbook import secrets
from playbook.publishers.base import Failure

# The replies that let a transaction go on: to MAIL, RCPT (251: forwarded), DATA (354: go ahead), the message.
_MAIL_OK = frozenset({250})
_RCPT_OK = frozenset({250, 251})
_DATA_OK = frozenset({354})
_MESSAGE_OK = frozenset({250})
# A longer reply is a broken or hostile server: the connection is dropped rather than its reply kept.
_MAX_REPLY = 32 * 1024


class Slot:
    """One of the channel's `connections`: the connection it holds now, if any."""

    def __init__(self) -> None:
        self.connection: Connection | None = None


class Connection(asyncio.Protocol):
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
            reply = parse_reply(self._buffer)
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


def parse_reply(buffer: bytearray) -> aiosmtplib.SMTPResponse | None:
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


async def connect(client: aiosmtplib.SMTP) -> Connection:
    """A connection ready for MAIL: aiosmtplib connects, starts TLS and logs in, then hands its transport over."""
    await client.connect()
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    assert client.transport is not None
    return Connection(client.transport)


async def transaction(slot: Slot, reconnect: Callable[[], Awaitable[Connection | Failure]], sender: str,
                      address: str, data: bytes, where: str) -> tuple[str | Failure, bool]:
    """One SMTP transaction on `slot`: (the server's answer, or a Failure; whether the connection is idle again).

    `where` (host:port) names the server in failures; `reconnect` opens a connection when the slot has none.
    """
    connection = slot.connection
    reused = connection is not None and connection.is_open
    if connection is None or not reused:
        connected = await reconnect()
        if isinstance(connected, Failure):
            return connected, False
        slot.connection = connection = connected
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
            connected = await reconnect()
            if isinstance(connected, Failure):
                return connected, False
            slot.connection = connection = connected
            step, reply = await connection.exchange(steps)
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Failure(f"the connection to {where} failed: {_said(exc)}", retryable=True), False
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


def connect_failure(exc: BaseException, where: str, channel: str) -> Failure:
    """What a failed connect, TLS handshake or login means, naming the setting to fix (never its value)."""
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


async def _reset(slot: Slot) -> bool:
    """RSET after a refused recipient or DATA, so the connection can carry the next message; False if it cannot."""
    if slot.connection is None:
        return False
    try:
        _, reply = await slot.connection.exchange(((b"RSET\r\n", _MAIL_OK),))
    except (aiosmtplib.SMTPException, OSError):
        return False
    return reply.code in _MAIL_OK


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
