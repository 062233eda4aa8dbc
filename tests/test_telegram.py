"""The Telegram channel through the real engine and CLI, against a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import channel_check, deliveries, free_port, ledger_text, run_cli, run_trigger, write
from tests.fakes.provider import add_channel
from tests.fakes.telegram_api import Chat, FakeTelegram, bad_gateway, error, rate_limited

TOKEN = "7351824690:AAF3kq9Zx2Lm8Vb4Nc7Rt1Yp6Hs0Wd5Eg"
CHANNEL_ID = -1001987654321
TOKEN_REFUSED = ("Telegram refused the bot token (401 Unauthorized): get a new one from @BotFather (/token) and "
                 "update setting 'token' of channel 'telegram'")
ADMIN_HINT = "add the bot to @example_status as an administrator allowed to post messages"


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN, [Chat(CHANNEL_ID, username="example_status")]) as fake:
        yield fake


def use_telegram(home: Path, api_base: str, *, chat: str = "@example_status", **settings: Any) -> None:
    """Add channel `telegram` (the bot's token from .env) to every phase of the starter home."""
    add_channel(home, "telegram", {"type": "telegram", "token": "${TELEGRAM_BOT_TOKEN}", "chat_id": chat,
                                   "api_base": api_base, **settings}, env={"TELEGRAM_BOT_TOKEN": TOKEN})


def telegram_deliveries(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return deliveries(data, "telegram")


def test_each_language_is_posted_as_html_with_the_title_in_bold(home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    result, data = run_trigger(home, "--var", "brand=Fish & Chips <Ltd>")
    assert result.code == 0, result.output
    posted = telegram_deliveries(data)
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
    _, first = run_trigger(home)
    update = run_cli("update", first["incident"], "--phase", "identified", "--yes", "--json", home=home)
    assert update.code == 0, update.output
    by_id = {str(m.message_id): m for m in telegram.messages}
    for lang, delivery in telegram_deliveries(json.loads(update.stdout)).items():
        assert by_id[delivery["remote_id"]].reply_to == int(telegram_deliveries(first)[lang]["remote_id"])
    replies = [r.json["reply_parameters"] for r in telegram.sent() if "reply_parameters" in r.json]
    assert len(replies) == 2 and all(r["allow_sending_without_reply"] for r in replies)


def test_flood_control_waits_the_seconds_telegram_asks_for(home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    telegram.script("sendMessage", rate_limited(2))
    result, data = run_trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in telegram_deliveries(data).values()) == [1, 2]
    limited = telegram.sent()[0]
    retried = [r for r in telegram.sent()[1:] if r.json["text"] == limited.json["text"]]
    assert len(retried) == 1 and retried[0].at - limited.at >= 2.0
    assert len(telegram.messages) == 2


def test_bad_gateway_is_retried_until_telegram_accepts(home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    telegram.script("sendMessage", bad_gateway())
    result, data = run_trigger(home)
    assert result.code == 0, result.output
    assert sorted(d["attempts"] for d in telegram_deliveries(data).values()) == [1, 2]
    assert len(telegram.messages) == 2


def test_refused_token_fails_fast_saying_what_to_do_while_other_channels_deliver(
        home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    started = time.monotonic()
    result, data = run_trigger(home, env={"TELEGRAM_BOT_TOKEN": "7351824690:AAold-revoked-Qw3Er6Ty9Ui2"})
    assert result.code == 1, result.output
    assert time.monotonic() - started < 15
    for delivery in telegram_deliveries(data).values():
        assert delivery["status"] == "failed" and delivery["attempts"] == 1
        assert delivery["error"] == TOKEN_REFUSED
    others = [d for d in data["deliveries"] if d["channel"] != "telegram"]
    assert len(others) == 6 and all(d["status"] == "sent" for d in others)
    assert not telegram.messages


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
    result, data = run_trigger(home)
    assert result.code == 1, result.output
    for delivery in telegram_deliveries(data).values():
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


def test_token_never_appears_in_output_ledger_or_errors(home: Path, telegram: FakeTelegram) -> None:
    use_telegram(home, telegram.url)
    results = [run_cli("channels", "--check", home=home), run_cli("channels", "--json", home=home)]
    first, data = run_trigger(home)
    results.append(first)
    telegram.script("sendMessage", error(401, "Unauthorized"), error(401, "Unauthorized"))
    results.append(run_cli("--debug", "update", data["incident"], "--phase", "identified", "--yes", home=home))
    results.append(run_cli("status", "--json", home=home))
    assert results[-2].code == 1 and "Telegram refused the bot token (401 Unauthorized)" in results[-2].output
    seen = "\n".join(r.output for r in results) + ledger_text(home)
    assert len(telegram.messages) == 2
    assert TOKEN not in seen and TOKEN.partition(":")[2] not in seen


def test_unreachable_api_is_retried_then_named_by_host_only(home: Path) -> None:
    port = free_port()
    use_telegram(home, f"http://127.0.0.1:{port}", retry_for="3s")
    result, data = run_trigger(home, "--detected-at", "-40m")
    assert result.code == 1, result.output
    for delivery in telegram_deliveries(data).values():
        assert delivery["attempts"] >= 2
        assert delivery["error"].startswith(f"cannot reach 127.0.0.1:{port} (gave up after ")
    check = run_cli("channels", "--check", home=home)
    assert check.code == 1 and f"cannot reach 127.0.0.1:{port}" in check.stdout
    seen = result.output + check.output + ledger_text(home)
    assert TOKEN.partition(":")[2] not in seen
