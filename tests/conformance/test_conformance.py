"""The platforms' own test cases, run through the project's measures (sources in README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook.publishers.limits import (
    BlueskyText,
    MastodonLength,
    SmsSegments,
    XWeighted,
    mastodon_countable,
    sms_segments,
)

HERE = Path(__file__).parent


def cases(name: str) -> list[Any]:
    data = yaml.safe_load((HERE / name).read_text(encoding="utf-8"))
    return [pytest.param(case, id=case["description"][:60]) for case in data["cases"]]


@pytest.mark.parametrize("case", cases("twitter_text_validate.yml"))
def test_x_weighs_and_validates_as_twitter_text(case: dict[str, Any]) -> None:
    measure = XWeighted().measure(case["text"])
    assert (measure.count, measure.ok) == (case["weightedLength"], case["valid"])


def test_x_refuses_an_empty_post_as_twitter_text_does() -> None:
    measure = XWeighted().measure("")
    assert not measure.ok
    assert str(measure) == "0/280 weighted characters, an empty post is refused"


@pytest.mark.parametrize(("char", "name"), [("\ufffe", "U+FFFE"), ("\uffff", "U+FFFF"), ("\ufeff", "U+FEFF")])
def test_x_refuses_the_characters_twitter_text_calls_invalid(char: str, name: str) -> None:
    measure = XWeighted().measure(f"Panne {char}en cours")
    assert not measure.ok and measure.problem == f"holds {name}, a character X refuses"


@pytest.mark.parametrize("case", cases("mastodon_status_length.yml"))
def test_mastodon_accepts_and_refuses_as_its_own_validator_spec(case: dict[str, Any]) -> None:
    text = "".join(piece * times for piece, times in case["parts"])
    assert MastodonLength(500, 23).measure(text).ok is case["ok"]


@pytest.mark.parametrize(("text", "countable"), [
    ("Suivi : https://status.example.com/incidents/42.", "Suivi : " + "x" * 23 + "."),
    ("(https://status.example.com/a)", "(" + "x" * 23 + ")"),
    ("https://status.example.com/a, puis", "x" * 23 + ", puis"),
    ("https://status.example.com/a; puis", "x" * 23 + "; puis"),
    ("https://fr.wikipedia.org/wiki/Panne_(électricité)", "x" * 23),
    ("voirhttps://status.example.com", "voirhttps://status.example.com"),
    ("status.example.com", "status.example.com"),
    ("Écrivez à @support@example.com ou @aide", "Écrivez à @support ou @aide"),
    ("support@example.com", "support@example.com"),
])
def test_mastodon_finds_urls_and_mentions_where_its_regex_does(text: str, countable: str) -> None:
    assert mastodon_countable(text) == countable


def test_mastodon_uses_the_instance_figures() -> None:
    text = "a" * 990 + " https://status.example.com/incidents/42"
    assert MastodonLength(1000, 9).measure(text).count == 1000
    assert not MastodonLength(1000, 10).measure(text).ok


@pytest.mark.parametrize("case", cases("twilio_segments.yml"))
def test_sms_segments_match_twilios_calculator(case: dict[str, Any]) -> None:
    segments, encoding, _ = sms_segments(case["body"])
    assert (segments, encoding) == (case["segments"], case["encoding"])


@pytest.mark.parametrize(("text", "segments"), [
    # An escape pair (2 septets) that would straddle septets 153 and 154 starts the second segment.
    ("a" * 152 + "€" + "a" * 153, 3),
    ("a" * 151 + "€" + "a" * 153, 2),
    ("a" * 152 + "[" + "a" * 152, 3),
    ("a" * 152 + "{" + "a" * 151, 2),
    ("a" * 158 + "€", 1),
    ("a" * 159 + "€", 2),
    # A surrogate pair (an emoji, 2 UTF-16 units) that would straddle units 67 and 68.
    ("é’" + "a" * 64 + "😀" + "a" * 66, 3),
    ("’" + "a" * 64 + "😀" + "a" * 67, 2),
    ("’" + "a" * 67 + "😀", 1),
    ("’" + "a" * 68 + "😀", 2),
    ("😀" * 34 + "a" * 66, 3),
    ("a" + "😀" * 33 + "a" * 66, 2),
])
def test_sms_never_splits_an_escape_or_surrogate_pair_across_segments(text: str, segments: int) -> None:
    assert sms_segments(text)[0] == segments


def test_a_lone_gsm7_escape_is_not_a_gsm7_character() -> None:
    assert sms_segments("Panne \x1b")[1] == "UCS-2"


def test_sms_limit_counts_the_segment_carriers_add() -> None:
    assert not SmsSegments(limit=2).measure("a" * 152 + "€" + "a" * 153).ok


def test_bluesky_limits_are_the_lexicons() -> None:
    lexicon = yaml.safe_load((HERE / "bluesky_post.yml").read_text(encoding="utf-8"))
    limit = BlueskyText()
    assert (limit.limit, limit.max_bytes) == (lexicon["maxGraphemes"], lexicon["maxLength"])
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"  # 25 bytes, one grapheme
    assert limit.measure(family * 120).ok  # 3,000 bytes exactly
    refused = limit.measure(family * 121)
    assert not refused.ok and str(refused) == "121/300 graphemes, 3,025/3,000 bytes, over 3,000 bytes"
    assert limit.measure("é" * 300).ok and not limit.measure("é" * 301).ok
