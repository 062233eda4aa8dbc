"""Message lengths measured the way each provider counts them."""

from __future__ import annotations

import pytest

from playbook.publishers.limits import Graphemes, MastodonLength, SmsSegments, XWeighted, is_gsm7, sms_segments

LONG_URL = "https://status.example.com/incidents/2026-11-25/whatsapp-business-outage?utm_source=x&lang=fr"


@pytest.mark.parametrize(("text", "weight"), [
    ("a", 1),
    ("é", 1),  # precomposed accent: Latin-1 weighs 1
    ("e\u0301", 1),  # the same é decomposed: X normalises to NFC first
    ("Panne réglée à 14h", 18),
    ("😀", 2),
    ("👍🏽", 2),  # emoji with a skin-tone modifier: one emoji
    ("👨\u200d👩\u200d👧", 2),  # a ZWJ family sequence: one emoji
    ("日本", 4),  # CJK weighs 2 each
    ("https://example.com", 23),
    (LONG_URL, 23),  # any URL weighs 23, whatever its length
    ("Suivi : https://status.example.com", 31),
    ("’", 1),  # typographic apostrophe (U+2019): in the punctuation range X weighs 1
    ("€", 2),  # the euro sign (U+20AC) is not
])
def test_x_weights_text_like_x_does(text: str, weight: int) -> None:
    assert XWeighted().measure(text).count == weight


def test_x_limit_is_280_weighted_characters() -> None:
    assert XWeighted().measure("é" * 280).ok
    over = XWeighted().measure("é" * 281)
    assert not over.ok
    assert str(over) == "281/280 weighted characters"


def test_x_counts_a_long_url_as_23_in_a_full_post() -> None:
    text = "x" * 256 + " " + LONG_URL  # 256 + 1 + 23 = 280: fits, although the raw text is 350 characters
    assert len(text) > 280
    assert XWeighted().measure(text).count == 280


@pytest.mark.parametrize(("text", "count"), [
    ("é", 1),
    ("e\u0301", 1),  # a letter and its combining accent are one grapheme
    ("👨\u200d👩\u200d👧", 1),
    ("🇫🇷", 1),  # a flag is two regional indicators, one grapheme
    ("日本", 2),
    ("https://example.com", 19),  # Bluesky counts URLs as written
])
def test_bluesky_counts_graphemes(text: str, count: int) -> None:
    assert Graphemes().measure(text).count == count


def test_bluesky_limit_is_300_graphemes() -> None:
    assert Graphemes().measure("👍🏽" * 300).ok
    assert str(Graphemes().measure("👍🏽" * 301)) == "301/300 graphemes"


def test_mastodon_counts_graphemes_with_every_linked_url_as_23() -> None:
    mastodon = MastodonLength(500, 23)
    measure = mastodon.measure("Suivi : " + LONG_URL + " 🇫🇷")
    assert measure.count == 8 + 23 + 2
    assert str(measure) == "33/500 characters, URLs count 23"
    assert not mastodon.measure("é" * 501).ok


@pytest.mark.parametrize(("text", "expected"), [
    ("", (0, "GSM-7", 0)),
    ("a" * 160, (1, "GSM-7", 160)),
    ("a" * 161, (2, "GSM-7", 161)),  # concatenated: 153 septets per segment
    ("a" * 306, (2, "GSM-7", 306)),
    ("a" * 307, (3, "GSM-7", 307)),
    ("€" * 80, (1, "GSM-7", 160)),  # the extension set costs two septets
    ("é" * 160, (1, "GSM-7", 160)),  # é is in the GSM-7 basic set
    ("a" * 69 + "’", (1, "UCS-2", 70)),  # one typographic apostrophe switches the whole SMS to UCS-2
    ("a" * 70 + "’", (2, "UCS-2", 71)),  # ... and then 67 per segment
    ("a" * 133 + "’", (2, "UCS-2", 134)),
    ("a" * 134 + "’", (3, "UCS-2", 135)),
    ("14:05\u202fPM", (1, "UCS-2", 8)),  # the narrow no-break space Babel writes before PM
    ("😀", (1, "UCS-2", 2)),  # an emoji is two UTF-16 code units
])
def test_sms_segments(text: str, expected: tuple[int, str, int]) -> None:
    assert sms_segments(text) == expected


@pytest.mark.parametrize(("char", "gsm"), [("’", False), ("\u202f", False), ("'", True), ("\u00a0", False),
                                           ("Ç", True), ("ç", False)])
def test_which_characters_force_ucs2(char: str, gsm: bool) -> None:
    assert is_gsm7(char) is gsm


def test_sms_limit_reports_segments_with_encoding() -> None:
    measure = SmsSegments(limit=1).measure("Panne réglée, merci pour votre patience ’")
    assert str(measure) == "1/1 segments, UCS-2, 41 units"
    assert not SmsSegments(limit=1).measure("a" * 71 + "’").ok
