"""A message's plain-text body as HTML: one converter, the same rules in an email's HTML part and on the status page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbook.publishers.text_html import text_to_html


@pytest.mark.parametrize(("text", "expected"), [
    ("Write to support@example.com.", '<p>Write to <a href="mailto:support@example.com">support@example.com</a>.</p>'),
    ("See https://example.com/chat.", '<p>See <a href="https://example.com/chat">https://example.com/chat</a>.</p>'),
    ("(https://example.com/a?b=1&c=2)",
     '<p>(<a href="https://example.com/a?b=1&amp;c=2">https://example.com/a?b=1&amp;c=2</a>)</p>'),
    ("FAQ\u00a0: https://example.com/faq\u00a0»", '<p>FAQ\u00a0: <a href="https://example.com/faq">'
                                                  "https://example.com/faq</a>\u00a0»</p>"),
    ('https://x.example/"><script>', '<p><a href="https://x.example/">https://x.example/</a>&#34;&gt;&lt;script&gt;</p>'),
    ("Call +33 1 23 45 67 89 now", '<p>Call <a href="tel:+33123456789">+33 1 23 45 67 89</a> now</p>'),
])
def test_web_and_email_addresses_and_phone_numbers_become_links_without_the_punctuation_after_them(
        text: str, expected: str) -> None:
    assert text_to_html(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("javascript:alert(1)", "<p>javascript:alert(1)</p>"),
    ("data:text/html,<script>alert(1)</script>", "<p>data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;</p>"),
    # An address without a host is no web address.
    ("Go to https://?q=1 or http://.", "<p>Go to https://?q=1 or http://.</p>"),
    ("ftp://files.example.com/notice.txt", "<p>ftp://files.example.com/notice.txt</p>"),
])
def test_only_http_and_https_addresses_with_a_host_become_web_links(text: str, expected: str) -> None:
    assert text_to_html(text) == expected


def test_every_character_html_reads_as_markup_is_escaped() -> None:
    assert text_to_html("Tom & \"Jerry\" <b>l'équipe</b>") == (
        "<p>Tom &amp; &#34;Jerry&#34; &lt;b&gt;l&#39;équipe&lt;/b&gt;</p>")


@pytest.mark.parametrize(("text", "expected"), [
    ("one\ntwo\n\nthree", "<p>one<br>\ntwo</p>\n<p>three</p>"),
    ("  one  \r\n \t \r\n  two  ", "<p>one</p>\n<p>two</p>"),
    ("Reach us:\n- by email\n- by <b>phone</b>\nThanks",
     "<p>Reach us:</p>\n<ul>\n<li>by email</li>\n<li>by &lt;b&gt;phone&lt;/b&gt;</li>\n</ul>\n<p>Thanks</p>"),
    ("• chat\n* phone\n-5 °C outside", "<ul>\n<li>chat</li>\n<li>phone</li>\n</ul>\n<p>-5 °C outside</p>"),
    ("", ""),
])
def test_blank_lines_part_paragraphs_line_breaks_stay_and_bulleted_lines_make_a_list(text: str, expected: str) -> None:
    assert text_to_html(text) == expected


def test_a_whole_message_reads_the_same_in_an_email_and_on_the_status_page() -> None:
    text = ("Bonjour <script>alert(1)</script> & bienvenue,\nsuite de la ligne\n\n"
            "Nous restons joignables :\n- par e-mail : support@example.com\n- sur https://example.com/chat?a=1&b=2.\n\n"
            "Suivi : https://status.example.com (mis à jour)")
    assert text_to_html(text) == (
        "<p>Bonjour &lt;script&gt;alert(1)&lt;/script&gt; &amp; bienvenue,<br>\nsuite de la ligne</p>\n"
        "<p>Nous restons joignables :</p>\n"
        '<ul>\n<li>par e-mail : <a href="mailto:support@example.com">support@example.com</a></li>\n'
        '<li>sur <a href="https://example.com/chat?a=1&amp;b=2">https://example.com/chat?a=1&amp;b=2</a>.</li>\n'
        "</ul>\n"
        '<p>Suivi : <a href="https://status.example.com">https://status.example.com</a> (mis à jour)</p>'
    )


class _Markup(HTMLParser):
    """The tags, links and text a browser would find in a fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.hrefs += [value or "" for name, value in attrs if name == "href"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*"ab.:/@+1 -•*<>&\"'\n", "https://", "javascript:", "x.example", "<script>"]),
                max_size=30).map("".join))
def test_any_text_gives_only_the_converters_own_tags_links_of_four_kinds_and_every_word_it_had(text: str) -> None:
    parser = _Markup()
    parser.feed(str(text_to_html(text)))
    parser.close()
    assert parser.tags <= {"p", "br", "ul", "li", "a"}
    assert all(re.match(r"(https?://[^/?#\s]|mailto:|tel:\+)", href) for href in parser.hrefs), parser.hrefs
    # Nothing is lost: every character comes back, but for spacing and the bullets that became list items.
    lines = [line.strip() for line in text.splitlines()]
    words = [re.sub(r"^[-•*]\s+", "", line) if re.fullmatch(r"[-•*]\s+.*", line) else line for line in lines]
    assert re.sub(r"\s+", "", "".join(parser.text)) == re.sub(r"\s+", "", "".join(words))
