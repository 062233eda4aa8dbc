"""Every secret value the process has seen, and the one function that masks them in any text."""

from __future__ import annotations

import re

MASK = "***"
# Shorter values would mask ordinary words; a real token or password is never this short.
MIN_LENGTH = 4

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(value: str | None) -> None:
    global _pattern
    if value and len(value) >= MIN_LENGTH and value not in _secrets:
        _secrets.add(value)
        _pattern = None


def redact(text: str) -> str:
    """`text` with every registered secret replaced by ***; longest first so no fragment survives."""
    global _pattern
    if not _secrets or not text:
        return text
    if _pattern is None:
        _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))
    return _pattern.sub(MASK, text)


def forget_all() -> None:
    """For tests that run many homes in one process."""
    global _pattern
    _secrets.clear()
    _pattern = None
