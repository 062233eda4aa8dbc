"""Length limits of the channels, each measured the way the provider counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

URL = re.compile(r"https?://[^\s<>\"«»]+", re.IGNORECASE)


@dataclass(frozen=True)
class Measure:
    """How long a text is for one channel, against that channel's limit."""

    count: int
    limit: int
    unit: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.count <= self.limit

    def __str__(self) -> str:
        extra = f", {self.detail}" if self.detail else ""
        return f"{self.count}/{self.limit} {self.unit}{extra}"


class Limit(Protocol):
    # Read-only, so the frozen dataclasses below satisfy it.
    @property
    def name(self) -> str: ...

    def measure(self, text: str) -> Measure: ...


@dataclass(frozen=True)
class XWeighted:
    """X's weighted count: most Latin text weighs 1, CJK and emoji 2, any URL 23."""

    limit: int = 280
    name: str = "X weighted characters"

    def measure(self, text: str) -> Measure:
        from twitter_text import parse_tweet

        return Measure(parse_tweet(text).weightedLength, self.limit, "weighted characters")


@dataclass(frozen=True)
class Graphemes:
    """User-perceived characters: an emoji with modifiers is one. Bluesky counts these (300); Mastodon
    too (500), with every URL counted as 23 whatever its length: `Graphemes(500, url_weight=23)`."""

    limit: int = 300
    url_weight: int | None = None
    name: str = "graphemes"

    def measure(self, text: str) -> Measure:
        import regex

        if self.url_weight is None:
            return Measure(len(regex.findall(r"\X", text)), self.limit, "graphemes")
        urls = URL.findall(text)
        count = len(regex.findall(r"\X", URL.sub("", text))) + self.url_weight * len(urls)
        return Measure(count, self.limit, "graphemes", f"URLs count {self.url_weight}" if urls else "")


@dataclass(frozen=True)
class Characters:
    """Unicode code points, for a provider that counts them plainly."""

    limit: int
    name: str = "characters"

    def measure(self, text: str) -> Measure:
        return Measure(len(text), self.limit, "characters")


# GSM 03.38: the basic set costs one septet, the extension set two (escape + char).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = "^{}\\[~]|€\f"
_GSM7 = frozenset(GSM7_BASIC) | frozenset(GSM7_EXTENDED)


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM7 for ch in text)


def sms_segments(text: str) -> tuple[int, str, int]:
    """(segments, encoding, units) of an SMS: GSM-7 160/153 septets, UCS-2 70/67 code units."""
    if is_gsm7(text):
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return (1 if units else 0), encoding, units
    return -(-units // multi), encoding, units


@dataclass(frozen=True)
class SmsSegments:
    """Segments of an SMS; a message longer than `limit` segments is refused."""

    limit: int = 3
    name: str = "SMS segments"

    def measure(self, text: str) -> Measure:
        segments, encoding, units = sms_segments(text)
        return Measure(segments, self.limit, "segments", f"{encoding}, {units} units")
