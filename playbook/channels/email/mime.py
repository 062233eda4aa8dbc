"""The pieces of a message as bytes: headers folded and encoded here, parts in quoted-printable.

One message is built per recipient: what recurs from one to the next (a subject, a line of the body) is
encoded once and cached.
"""

from __future__ import annotations

import binascii
import html
import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.utils import format_datetime
from functools import lru_cache
from urllib.parse import quote

_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_PRINTABLE = re.compile(r"[ -~]*")
# 45 bytes of UTF-8 make 60 characters of base64: with "=?utf-8?b?" and "?=", a 72-character encoded word.
_WORD_BYTES = 45
ASCII_SPACES = re.compile(r"[ \t\r\n\f\v]+")


def address_header(field: str, name: str, address: str) -> bytes:
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
    return mailbox_header(field, name, address)


def mailbox_header(field: str, name: str, address: str) -> bytes:
    """`From: Name <address>` as the email package folds and encodes it: for the channel's own addresses."""
    folded = policy.SMTP.header_factory(field, [Address(display_name=name, addr_spec=address)])
    return str(folded.fold(policy=policy.SMTP)).encode("ascii")


@lru_cache(maxsize=64)
def subject_header(subject: str) -> bytes:
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


PLAIN_PART = b'\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
HTML_PART = b'\r\nContent-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'


@lru_cache(maxsize=4)
def date_header(second: int) -> bytes:
    """The Date line, zone +0000 (RFC 5322 lists "GMT" as obsolete): the same within one second."""
    return f"Date: {format_datetime(datetime.fromtimestamp(second, UTC))}\r\n".encode()


def unsubscribe_header(link: str) -> bytes:
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
def language_header(lang: str) -> bytes:
    return f"Content-Language: {_token(lang)}\r\n".encode()


# Characters quote() leaves as they are, and "@", which it writes %40.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_.~-]+@[A-Za-z0-9_.~-]+")


def quoted_address(address: str) -> str:
    """quote(address, safe=""), at a fraction of its cost for the usual address."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address.replace("@", "%40")
    return quote(address, safe="")


def quoted_printable(text: str) -> bytes:
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




def html_document(fragment: str, lang: str, title: str) -> str:
    """A complete HTML page around a fragment (a template's html block is usually a fragment)."""
    if fragment.lstrip()[:14].lower().startswith(("<!doctype", "<html")):
        return fragment
    return (f'<!DOCTYPE html>\n<html lang="{_token(lang)}">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title, quote=False)}</title>\n</head>\n<body>\n{fragment}\n</body>\n</html>\n")

