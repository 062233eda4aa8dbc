"""Text from outside (a CSV cell, a template, a provider's answer) made safe for where it goes.

XML, HTML, JSON bodies and mail headers cannot carry every code point: an Atom feed holding one ESC
character no longer parses, and a lone surrogate cannot even be encoded as UTF-8. A link from a provider
becomes an `href` on pages and in chats: only a web address may.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# What XML 1.0 refuses (C0 controls but tab and line breaks, lone surrogates, U+FFFE and U+FFFF): no
# message needs them, and every output format either refuses or mangles them.
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_BLANK_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def text_only(value: str) -> str:
    """`value` without the code points XML, HTML, JSON or mail headers cannot carry."""
    return _NOT_TEXT.sub("", value)


def web_link(value: str | None) -> str | None:
    """`value` if it is an http(s) address with a host, else None: never a javascript: or data: link."""
    if not value or _BLANK_OR_CONTROL.search(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and parts.hostname else None
