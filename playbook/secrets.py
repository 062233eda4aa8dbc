"""Every secret value the process has seen, and the one function that masks them in any text.

A provider may echo a secret back in another form than it was sent: percent-encoded in a URL it quotes,
escaped in a JSON error, or inside the base64 of an HTTP basic `Authorization` header (`user:password`).
Each of those forms is masked too.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values would mask ordinary words; a real token or password is never this short.
MIN_LENGTH = 4
# A provider's message, shortened for a table cell or a ledger row.
EXCERPT = 200

_secrets: set[str] = set()
_forms: set[str] = set()
_pattern: re.Pattern[str] | None = None
_plain: re.Pattern[str] | None = None
_base64: re.Pattern[str] | None = None
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _encoded(value: str) -> set[str]:
    """`value` as URLs, form bodies and JSON may carry it."""
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    # Percent-encoding is case-insensitive: some servers write %2f where Python writes %2F.
    forms |= {_PERCENT.sub(lambda m: m.group().lower(), f) for f in forms}
    for ascii_only in (True, False):
        escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        # Some JSON encoders (PHP's among them) also escape '/'.
        forms |= {escaped, escaped.replace("/", "\\/")}
    return {f for f in forms if len(f) >= MIN_LENGTH}


def register(value: str | None) -> None:
    global _pattern, _plain, _base64
    if value and len(value) >= MIN_LENGTH and value not in _secrets:
        _secrets.add(value)
        _forms.update(_encoded(value))
        _pattern = _plain = _base64 = None


def redact(text: str) -> str:
    """`text` with every registered secret, in any of its forms, replaced by ***; longest first."""
    global _pattern, _plain, _base64
    if not _secrets or not text:
        return text
    if _pattern is None or _plain is None or _base64 is None:
        _pattern = re.compile("|".join(re.escape(s) for s in sorted(_forms, key=len, reverse=True)))
        _plain = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))
        # A run of base64 (standard or URL-safe) long enough to encode the shortest secret: shorter words
        # are not decoded at all, which keeps masking cheap on ordinary text.
        shortest = min(len(s.encode()) for s in _secrets)
        _base64 = re.compile(f"[A-Za-z0-9+/_-]{{{shortest * 4 // 3},}}={{0,2}}")
    plain = _plain
    masked = _pattern.sub(MASK, text)

    def base64_holding_a_secret(found: re.Match[str]) -> str:
        token = found.group()
        run = token.rstrip("=").replace("-", "+").replace("_", "/")
        # The encoded value may be glued to other letters ("tokendXNlcjpw..."): try each of the 4 alignments.
        for start in range(4):
            chunk = run[start:]
            # A last group of 2 or 3 characters is padded; one of 1 holds no whole byte.
            chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk + "=" * (-len(chunk) % 4)
            try:
                decoded = base64.b64decode(chunk)
            except (binascii.Error, ValueError):
                continue
            if plain.search(decoded.decode("utf-8", "replace")):
                return MASK
        return token

    return _base64.sub(base64_holding_a_secret, masked)


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """`text` masked, on one line, then cut to `limit` characters: masking first, so no part of a secret is left."""
    return " ".join(redact(text).split())[:limit]


def forget_all() -> None:
    """For tests that run many homes in one process."""
    global _pattern, _plain, _base64
    _secrets.clear()
    _forms.clear()
    _pattern = _plain = _base64 = None


# ${NAME} in channels.yaml, a ledger URL or a monitor's settings; $$ for a dollar sign.
_REFERENCE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def references(text: str) -> list[str]:
    """The ${NAME} variables `text` refers to, in order."""
    return [m.group(2) for m in _REFERENCE.finditer(text) if m.group(2)]


def substitute(text: str, env: Mapping[str, str], missing: Callable[[str], Exception]) -> str:
    """`text` with each ${NAME} replaced by its value in `env`, registered as a secret (masked from then on),
    and $$ by $; `missing(NAME)` is raised for a variable that is not set (or empty)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        value = env.get(match.group(2))
        if not value:
            raise missing(match.group(2))
        register(value)
        return value

    return _REFERENCE.sub(replace, text)
