"""A fake Telegram Bot API on 127.0.0.1: getMe, getChat, getChatMember and sendMessage, answered as Telegram does.

The token is checked in the path (/bot<token>/<method>); sendMessage parses `parse_mode: HTML` as strictly as
Telegram (a stray <, > or & is refused), counts the parsed text against 4,096 characters, and keeps what it
posted in `messages`. Scripts are per method: `fake.script("sendMessage", rate_limited(3))`.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.provider import Answer, ProviderFake, Received

MESSAGE_LIMIT = 4096
ALLOWED_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                          "tg-spoiler", "span", "blockquote"})
_PATH = re.compile(r"/bot(?P<token>[^/]+)/(?P<method>\w+)")
_HTML = re.compile(r"<(/?)([A-Za-z][\w-]*)(?:\s[^<>]*)?>|&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);|[<>&]")


def error(code: int, description: str, **parameters: Any) -> Answer:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Answer(code, body)


def rate_limited(retry_after: int) -> Answer:
    """Telegram's flood control: the wait is in the body's parameters, not in a header."""
    return error(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def bad_gateway() -> Answer:
    """What Telegram's front end answers while the Bot API restarts: nginx's HTML page."""
    return Answer(502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
                       "Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n")


class ParseError(ValueError):
    pass


def parse_html(text: str) -> tuple[str, list[str]]:
    """(the text without tags, its bold parts), or ParseError with Telegram's words."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    bold: list[str] = []
    position = 0
    for match in _HTML.finditer(text):
        out.append(text[position:match.start()])
        position = match.end()
        token = match.group(0)
        offset = len(text[:match.start()].encode())
        if token in "<>&":
            raise ParseError(f"Can't find end of the entity starting at byte offset {offset}")
        if token.startswith("&"):
            out.append(html.unescape(token))
            continue
        closing, tag = match.group(1), match.group(2).lower()
        if tag not in ALLOWED_TAGS:
            raise ParseError(f'Unsupported start tag "{tag}" at byte offset {offset}')
        if not closing:
            stack.append((tag, len("".join(out))))
            continue
        if not stack or stack[-1][0] != tag:
            expected = stack[-1][0] if stack else ""
            raise ParseError(f'Unmatched end tag at byte offset {offset}, expected "</{expected}>"')
        _, start = stack.pop()
        if tag in ("b", "strong"):
            bold.append("".join(out)[start:])
    out.append(text[position:])
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), bold


@dataclass
class Chat:
    """A chat the bot may be in: `bot_status` is its member status there (administrator, member, left...)."""

    id: int
    type: str = "channel"
    title: str = "Example status"
    username: str | None = None
    bot_status: str = "administrator"
    can_post_messages: bool = True

    def summary(self) -> dict[str, Any]:
        found: dict[str, Any] = {"id": self.id, "title": self.title, "type": self.type}
        if self.username:
            found["username"] = self.username
        return found


@dataclass
class Posted:
    chat_id: int
    message_id: int
    html: str
    text: str
    bold: list[str]
    reply_to: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FakeTelegram(ProviderFake):
    """The Bot API of one bot (`token`), member of `chats`."""

    def __init__(self, token: str, chats: Iterable[Chat], bot_username: str = "example_status_bot") -> None:
        super().__init__()
        self.token = token
        self.bot = {"id": int(token.partition(":")[0]), "is_bot": True, "first_name": "Example status",
                    "username": bot_username}
        self.chats = list(chats)
        self.messages: list[Posted] = []
        self._next_id = 100

    def route(self, request: Received) -> str:
        return request.path.rpartition("/")[2]

    def sent(self) -> list[Received]:
        return self.requests("sendMessage")

    def _chat(self, chat_id: Any) -> Chat | None:
        for chat in self.chats:
            if (isinstance(chat_id, str) and chat_id.startswith("@") and chat.username
                    and chat_id[1:].lower() == chat.username.lower()):
                return chat
            if str(chat_id) == str(chat.id):
                return chat
        return None

    def answer(self, request: Received) -> Answer:
        match = _PATH.fullmatch(request.path)
        if match is None:
            return error(404, "Not Found")
        if match["token"] != self.token:
            return error(401, "Unauthorized")
        params = request.params
        method = match["method"]
        if method == "getMe":
            return Answer(200, {"ok": True, "result": self.bot})
        chat = self._chat(params.get("chat_id"))
        if chat is None or (chat.bot_status in ("left", "kicked") and chat.type != "channel"):
            return error(400, "Bad Request: chat not found")
        if method == "getChat":
            return Answer(200, {"ok": True, "result": chat.summary()})
        if method == "getChatMember":
            member: dict[str, Any] = {"user": self.bot, "status": chat.bot_status}
            if chat.bot_status == "administrator":
                member["can_post_messages"] = chat.can_post_messages
            return Answer(200, {"ok": True, "result": member})
        if method == "sendMessage":
            return self._send(chat, params)
        return error(404, "Not Found: method not found")

    def _send(self, chat: Chat, params: dict[str, Any]) -> Answer:
        if chat.type == "channel" and chat.bot_status not in ("administrator", "creator"):
            return error(403, "Forbidden: bot is not a member of the channel chat")
        if chat.type == "channel" and not chat.can_post_messages:
            return error(400, "Bad Request: need administrator rights in the channel chat")
        raw = str(params.get("text", ""))
        try:
            text, bold = parse_html(raw) if params.get("parse_mode") == "HTML" else (raw, [])
        except ParseError as exc:
            return error(400, f"Bad Request: can't parse entities: {exc}")
        if not text.strip():
            return error(400, "Bad Request: message text is empty")
        if len(text) > MESSAGE_LIMIT:
            return error(400, "Bad Request: message is too long")
        reply = params.get("reply_parameters") or {}
        reply_to = reply.get("message_id")
        with self._lock:
            known = any(m.message_id == reply_to and m.chat_id == chat.id for m in self.messages)
            if reply_to is not None and not known and not reply.get("allow_sending_without_reply"):
                return error(400, "Bad Request: message to be replied not found")
            self._next_id += 1
            posted = Posted(chat.id, self._next_id, raw, text, bold, reply_to if known else None)
            self.messages.append(posted)
        result: dict[str, Any] = {"message_id": posted.message_id, "sender_chat": chat.summary(),
                                  "chat": chat.summary(), "date": int(time.time()), "text": text}
        if posted.reply_to is not None:
            result["reply_to_message"] = {"message_id": posted.reply_to, "chat": chat.summary()}
        return Answer(200, {"ok": True, "result": result})
