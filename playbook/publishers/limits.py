"""Length limits of the channels, each measured the way the provider counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

# Links worth checking in a rendered text (rehearse --check-links); not how any platform counts them.
URL = re.compile(r"https?://[^\s<>\"«»]+", re.IGNORECASE)


@dataclass(frozen=True)
class Measure:
    """How long a text is for one channel, against that channel's limit; `problem` when it cannot go out."""

    count: int
    limit: int
    unit: str
    detail: str = ""
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.count <= self.limit and not self.problem

    @property
    def too_long(self) -> bool:
        """Refused for its length (rather than, say, for a character the platform refuses)."""
        return self.count > self.limit or self.problem.startswith("over ")

    def __str__(self) -> str:
        extra = "".join(f", {part}" for part in (self.detail, self.problem) if part)
        return f"{self.count}/{self.limit} {self.unit}{extra}"


class Limit(Protocol):
    # Read-only, so the frozen dataclasses below satisfy it.
    @property
    def name(self) -> str: ...

    def measure(self, text: str) -> Measure: ...


# twitter-text's invalid characters: a post holding one is refused, whatever its length.
X_INVALID = {"\ufffe": "U+FFFE", "\ufeff": "U+FEFF", "\uffff": "U+FFFF"}


@dataclass(frozen=True)
class XWeighted:
    """X's weighted count (twitter-text v3): most Latin text weighs 1, CJK and emoji 2, any URL 23.

    An empty post, or one holding a character twitter-text calls invalid, is refused at any length."""

    limit: int = 280
    name: str = "X weighted characters"

    def measure(self, text: str) -> Measure:
        from twitter_text import parse_tweet

        weight = parse_tweet(text).weightedLength
        problem = ""
        if not text:
            problem = "an empty post is refused"
        elif bad := next((X_INVALID[ch] for ch in text if ch in X_INVALID), None):
            problem = f"holds {bad}, a character X refuses"
        return Measure(weight, self.limit, "weighted characters", problem=problem)


def graphemes(text: str) -> int:
    import regex

    return len(regex.findall(r"\X", text))


@dataclass(frozen=True)
class Graphemes:
    """User-perceived characters: an emoji with modifiers is one."""

    limit: int = 300
    name: str = "graphemes"

    def measure(self, text: str) -> Measure:
        return Measure(graphemes(text), self.limit, "graphemes")


@dataclass(frozen=True)
class BlueskyText:
    """A Bluesky post's text: at most 300 graphemes AND 3,000 UTF-8 bytes (lexicon app.bsky.feed.post)."""

    limit: int = 300
    max_bytes: int = 3000
    name: str = "graphemes (and 3,000 UTF-8 bytes)"

    def measure(self, text: str) -> Measure:
        size = len(text.encode("utf-8"))
        problem = f"over {self.max_bytes:,} bytes" if size > self.max_bytes else ""
        return Measure(graphemes(text), self.limit, "graphemes", f"{size:,}/{self.max_bytes:,} bytes", problem)


# Mastodon's own parts (app/lib/extractor.rb, config/initializers/twitter_regex.rb, Account::MENTION_RE).
MAX_URL_LENGTH = 4096
MAX_MENTION_DOMAIN = 253
_UCHARS = ("\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef\U00010000-\U0001fffd\U00020000-\U0002fffd"
           "\U00030000-\U0003fffd\U00040000-\U0004fffd\U00050000-\U0005fffd\U00060000-\U0006fffd"
           "\U00070000-\U0007fffd\U00080000-\U0008fffd\U00090000-\U0009fffd\U000a0000-\U000afffd"
           "\U000b0000-\U000bfffd\U000c0000-\U000cfffd\U000d0000-\U000dfffd\U000e1000-\U000efffd"
           "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd")


@cache
def _mastodon_patterns() -> tuple[Any, Any]:
    """(URL, mention) patterns as a Mastodon server finds them in a status."""
    import regex
    from twitter_text.regexp.valid_domain import valid_domain
    from twitter_text.regexp.valid_port_number import valid_port_number
    from twitter_text.regexp.valid_url_preceding_chars import valid_url_preceding_chars

    general = r"[^\p{White_Space}<>()?]"
    parens = rf"\((?:{general}+|(?:{general}*\({general}+\){general}*))\)"
    ending = rf"""(?:[^\p{{White_Space}}()?!*"'「」<>;:=,.$%\[\]~&|@]|{parens})"""
    path = rf"(?:(?:{general}*(?:{parens}{general}*)*{ending})|(?:{general}+/))"
    query = rf"[a-z0-9!?*'();:&=+$/%#\[\]\-_.,~|@\^{_UCHARS}]"
    query_end = rf"[a-z0-9_&=#/\-{_UCHARS}]"
    url = regex.compile(
        rf"({valid_url_preceding_chars.pattern})"
        rf"((?:https?|dat|dweb|ipfs|ipns|ssb|gopher|gemini)://)?"
        rf"({valid_domain.pattern})"
        rf"(?::(?:{valid_port_number.pattern}))?"
        rf"(/{path}*)?"
        rf"(\?{query}*{query_end})?",
        regex.IGNORECASE | regex.VERSION0,
    )
    mention = regex.compile(r"(?<![=/\w])@([a-z0-9_]+(?:[.-]+[a-z0-9_]+)*(?:@\w+(?:[.-]+\w+)*)?)",
                            regex.IGNORECASE)
    return url, mention


def _mastodon_entities(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of the URLs and mentions Mastodon sees, without overlaps, in order."""
    from twitter_text.extract_urls import idna_to_ascii

    url, mention = _mastodon_patterns()
    found: list[tuple[int, int, str]] = []
    for match in url.finditer(text):
        protocol, domain = match.group(2), match.group(3)
        if not protocol:
            continue  # Mastodon links only what has a scheme
        ascii_domain = idna_to_ascii(domain)
        if not ascii_domain:
            continue
        start = match.end(1)
        length = match.end() - start + max(0, len(ascii_domain) - len(domain))
        if length > MAX_URL_LENGTH:
            continue
        found.append((start, match.end(), "url"))
    for match in mention.finditer(text):
        after = text[match.end():]
        if re.match(r"[@＠]|://|[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff]", after):
            continue
        _, _, domain = match.group(1).partition("@")
        if len(domain) > MAX_MENTION_DOMAIN:
            continue
        found.append((match.start(), match.end(), "mention"))
    found.sort()
    kept: list[tuple[int, int, str]] = []
    for entity in found:
        if not kept or entity[0] >= kept[-1][1]:
            kept.append(entity)
    return kept


def mastodon_countable(text: str, url_weight: int = 23) -> str:
    """The text Mastodon measures: each URL as `url_weight` characters, each remote mention as `@user`."""
    parts: list[str] = []
    last = 0
    for start, end, kind in _mastodon_entities(text):
        parts.append(text[last:start])
        parts.append("x" * url_weight if kind == "url" else "@" + text[start + 1:end].split("@")[0])
        last = end
    parts.append(text[last:])
    return "".join(parts)


@dataclass(frozen=True)
class MastodonLength:
    """A Mastodon status as the server counts it: graphemes, each URL it links counting `url_weight`
    (characters_reserved_per_url) and each remote mention `@alice@example.com` counting as `@alice`."""

    limit: int = 500
    url_weight: int = 23
    name: str = "characters as Mastodon counts them"

    def measure(self, text: str) -> Measure:
        entities = _mastodon_entities(text)
        urls = sum(1 for *_, kind in entities if kind == "url")
        remote = sum(1 for s, e, kind in entities if kind == "mention" and "@" in text[s + 1:e])
        notes = [f"URLs count {self.url_weight}" if urls else "",
                 "remote mentions count as @user" if remote else ""]
        return Measure(graphemes(mastodon_countable(text, self.url_weight)), self.limit, "characters",
                       ", ".join(n for n in notes if n))


@dataclass(frozen=True)
class Characters:
    """Unicode code points, for a provider that counts them plainly."""

    limit: int
    name: str = "characters"

    def measure(self, text: str) -> Measure:
        return Measure(len(text), self.limit, "characters")


# GSM 03.38: the basic set costs one septet, the extension set two (escape + char). The escape (U+001B)
# itself is not a character a text may hold.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = "^{}\\[~]|€\f"
_GSM7 = frozenset(GSM7_BASIC) | frozenset(GSM7_EXTENDED)


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM7 for ch in text)


def _split(costs: list[int], single: int, multi: int) -> int:
    """Segments for characters of these costs: a character never straddles two segments."""
    total = sum(costs)
    if total <= single:
        return 1 if total else 0
    segments, room = 1, multi
    for cost in costs:
        if cost > room:
            segments, room = segments + 1, multi
        room -= cost
    return segments


def sms_segments(text: str) -> tuple[int, str, int]:
    """(segments, encoding, units) of an SMS: GSM-7 160/153 septets, UCS-2 70/67 code units.

    As carriers split a long text, an escape pair (€, [, {...) or a surrogate pair (an emoji) is never cut
    across two segments: such a character starts the next segment instead."""
    if is_gsm7(text):
        costs = [2 if ch in GSM7_EXTENDED else 1 for ch in text]
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi, encoding = 70, 67, "UCS-2"
    return _split(costs, single, multi), encoding, sum(costs)


@dataclass(frozen=True)
class SmsSegments:
    """Segments of an SMS; a message longer than `limit` segments is refused."""

    limit: int = 3
    name: str = "SMS segments"

    def measure(self, text: str) -> Measure:
        segments, encoding, units = sms_segments(text)
        return Measure(segments, self.limit, "segments", f"{encoding}, {units} units")
