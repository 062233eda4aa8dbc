"""The Telegram channel through the real engine and CLI, against a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import channel_check, run_cli, write
from tests.fakes.social import TELEGRAM, TELEGRAM_TOKEN
from tests.fakes.social import TELEGRAM_CHANNEL_ID as CHANNEL_ID
from tests.fakes.telegram_api import Chat, FakeTelegram, rate_limited

ADMIN_HINT = "add the bot to @example_status as an administrator allowed to post messages"


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(TELEGRAM_TOKEN, [Chat(CHANNEL_ID, username="example_status")]) as fake:
        yield fake


def use_telegram(home: Path, api_base: str, *, chat: str = "@example_status", **settings: Any) -> None:
    """Add channel `telegram` (the bot's token from .env) to every phase of the starter home."""
    TELEGRAM.use(home, api_base, chat_id=chat, **settings)


def test_each_language_is_posted_as_html_with_the_title_in_bold(home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    result, data = TELEGRAM.trigger(home, "--var", "brand=Fish & Chips <Ltd>")
    assert result.code == 0, result.output
    posted = TELEGRAM.posted(data)
    assert set(posted) == {"fr", "en"}
    by_id = {str(m.message_id): m for m in telegram.messages}
    for lang, delivery in posted.items():
        message = by_id[delivery["remote_id"]]
        assert delivery["status"] == "sent" and delivery["attempts"] == 1
        assert delivery["url"] == f"https://t.me/example_status/{message.message_id}"
        assert message.chat_id == CHANNEL_ID and message.reply_to is None
        assert len(message.bold) == 1 and message.text.startswith(message.bold[0] + "\n\n"), lang
        # Escaped on the way, the brand reads as written; URLs stay plain text for Telegram to link.
        assert "Fish & Chips <Ltd>" in message.text and "&amp;" in message.html
        assert "https://status.example.com" in message.text and "<a " not in message.html
    english = by_id[posted["en"]["remote_id"]]
    assert english.bold == ["WhatsApp messages delayed: you can still reach us by email, phone and chat"]
    assert all(r.json["parse_mode"] == "HTML" for r in telegram.sent())


def test_later_phases_reply_to_the_first_message_of_their_language(home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    _, first = TELEGRAM.trigger(home)
    update = run_cli("update", first["incident"], "--phase", "identified", "--yes", "--json", home=home)
    assert update.code == 0, update.output
    by_id = {str(m.message_id): m for m in telegram.messages}
    for lang, delivery in TELEGRAM.posted(json.loads(update.stdout)).items():
        assert by_id[delivery["remote_id"]].reply_to == int(TELEGRAM.posted(first)[lang]["remote_id"])
    replies = [r.json["reply_parameters"] for r in telegram.sent() if "reply_parameters" in r.json]
    assert len(replies) == 2 and all(r["allow_sending_without_reply"] for r in replies)


def test_flood_control_waits_the_seconds_telegram_asks_for(home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    telegram.script("sendMessage", rate_limited(2))
    result, data = TELEGRAM.trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in TELEGRAM.posted(data).values()) == [1, 2]
    limited = telegram.sent()[0]
    retried = [r for r in telegram.sent()[1:] if r.json["text"] == limited.json["text"]]
    assert len(retried) == 1 and retried[0].at - limited.at >= 2.0
    assert len(telegram.messages) == 2


@pytest.mark.parametrize(("chat", "bot_status", "expected"), [
    ("@example_status", "left",
     "Telegram refused to post in @example_status (Forbidden: bot is not a member of the channel chat): " + ADMIN_HINT),
    ("@no_such_channel", "administrator",
     "Telegram knows no chat @no_such_channel (chat not found): check chat_id (@username of a public channel or "
     "group, or its numeric id) and add the bot to @no_such_channel as an administrator allowed to post messages"),
])
def test_a_chat_the_bot_cannot_post_in_is_named_with_what_to_do(
        home: Path, telegram: FakeTelegram, chat: str, bot_status: str, expected: str) -> None:
    telegram.chats[0].bot_status = bot_status
    use_telegram(home, telegram.url, chat=chat)
    result, data = TELEGRAM.trigger(home)
    assert result.code == 1, result.output
    for delivery in TELEGRAM.posted(data).values():
        assert (delivery["status"], delivery["attempts"], delivery["error"]) == ("failed", 1, expected)


def test_body_over_the_limit_stops_everything_before_sending(home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    template = home / "templates" / "whatsapp-outage" / "investigating.en.j2"
    text = template.read_text(encoding="utf-8")
    write(template, re.sub(r"(\{% block body %\}).*?(\{% endblock %\})", r"\1" + "We are sorry. " * 300 + r"\2",
                           text, count=1, flags=re.DOTALL))
    result = run_cli("trigger", "whatsapp-outage", "--yes", home=home)
    assert result.code == 2, result.output
    assert ("block 'body' is too long for channel 'telegram': 4199/3838 characters; nothing was sent"
            in result.stderr)
    assert telegram.received == []
    assert not (home / "outbox").exists()


def test_check_names_the_bot_and_the_chat_it_may_post_in(home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    result, channel = channel_check(home, "telegram")
    assert result.code == 0, result.output
    assert channel["check"] == {"ok": True, "detail": "bot @example_status_bot may post in channel @example_status"}
    assert channel["limits"] == "title: characters ≤ 256, body: characters ≤ 3838"
    assert [telegram.route(r) for r in telegram.received] == ["getMe", "getChat", "getChatMember"]
    assert not telegram.messages


def test_check_of_a_bot_that_is_not_an_admin_says_what_to_do(home: Path, telegram: FakeTelegram) -> None:
    telegram.chats[0].can_post_messages = False
    use_telegram(home, telegram.url)
    result, channel = channel_check(home, "telegram")
    assert result.code == 1
    assert channel["check"] == {"ok": False, "detail": (
        "bot @example_status_bot may not post in channel @example_status (it is an administrator without the right "
        f"to post): {ADMIN_HINT}")}
