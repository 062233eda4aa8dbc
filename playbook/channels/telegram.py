"""`type: telegram`: a bot posts the title and body to a channel or group; later phases reply to the first post."""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from playbook import secrets
from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Receipt
from playbook.publishers.http import (
    HttpPublisher,
    failure_from_exception,
    failure_from_response,
    host_of,
    json_of,
    retry_at_in,
)
from playbook.publishers.limits import Characters, Limit

TELEGRAM_API = "https://api.telegram.org"
# Telegram's limit for the text of one message, counted after the HTML tags are parsed away.
MESSAGE_LIMIT = 4096
TITLE_LIMIT = 256
SEPARATOR = "\n\n"
# limits() measures one block at a time: the body gets what the longest title and the separator leave.
BODY_LIMIT = MESSAGE_LIMIT - TITLE_LIMIT - len(SEPARATOR)
# The member statuses that may post in a group; a channel needs an administrator allowed to post.
GROUP_POSTERS = ("creator", "administrator", "member")


class TelegramConfig(ChannelConfig):
    token: SecretStr = Field(description="The bot's token, from @BotFather")
    chat_id: int | str = Field(description="@username of a public channel or group, or its numeric id")
    api_base: AnyHttpUrl = Field(default=AnyHttpUrl(TELEGRAM_API),
                                 description="Where the Bot API is: a local Bot API server, or a fake")

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        bot_id, colon, rest = value.get_secret_value().partition(":")
        if not (bot_id.isdigit() and colon and rest):
            # The value is a secret: the message describes the expected shape, never what was given.
            raise ValueError("not a bot token: @BotFather gives one such as 123456789:AAE...")
        return value

    @field_validator("chat_id")
    @classmethod
    def _chat_id(cls, value: int | str) -> int | str:
        if isinstance(value, str):
            value = value.strip()
            if value.lstrip("-").isdigit():
                return int(value)
            if not (value.startswith("@") and len(value) > 1):
                raise ValueError(f"'{value}' is not a chat: write @username (a public channel or group) or its "
                                 "numeric id, such as -1001234567890")
        return value


class TelegramPublisher(HttpPublisher[TelegramConfig]):
    """Sends `title` in bold over `body` as HTML; URLs stay text, which Telegram turns into links."""

    Config = TelegramConfig
    blocks = ("body",)
    optional_blocks = ("title",)
    typical_latency = 0.5
    # Telegram lets a bot post about 20 messages a minute in one group or channel.
    rate_limit = (20, timedelta(minutes=1))
    idempotency = ("the Bot API takes no idempotency key: a message Telegram posted just before the process "
                   "stopped, not yet recorded, is posted again by resume")

    def limits(self) -> Mapping[str, Limit]:
        return {"title": Characters(TITLE_LIMIT), "body": Characters(BODY_LIMIT)}

    @property
    def chat(self) -> str:
        return str(self.config.chat_id)

    @property
    def host(self) -> str:
        return host_of(str(self.config.api_base))

    def _method_url(self, method: str) -> str:
        # The token is part of the path: this URL must never reach a message, a log or the ledger.
        return f"{str(self.config.api_base).rstrip('/')}/bot{self.config.token.get_secret_value()}/{method}"

    async def _call(self, method: str, payload: dict[str, Any]) -> httpx.Response | Failure:
        http = await self.http()
        try:
            return await http.post(self._method_url(method), json=payload)
        except httpx.HTTPError as exc:
            return failure_from_exception(exc, self.host)

    def text(self, delivery: Delivery) -> str:
        """The message as Telegram HTML: the title in bold, a blank line, the body; &, < and > escaped."""
        title = delivery.message.block("title").strip()
        body = html.escape(delivery.message.block("body").strip(), quote=False)
        return f"<b>{html.escape(title, quote=False)}</b>{SEPARATOR}{body}" if title else body

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        payload: dict[str, Any] = {"chat_id": self.config.chat_id, "text": self.text(delivery), "parse_mode": "HTML"}
        reply_to = delivery.thread.remote_id if delivery.thread is not None else None
        if reply_to and reply_to.isdigit():
            # Still posted if the first message was deleted: the update matters more than the thread.
            payload["reply_parameters"] = {"message_id": int(reply_to), "allow_sending_without_reply": True}
        answer = await self._call("sendMessage", payload)
        if isinstance(answer, Failure):
            return answer
        if not answer.is_success:
            return self.failure(answer)
        result = _result(answer)
        message_id = result.get("message_id")
        if message_id is None:
            return Receipt(note=f"Telegram answered HTTP {answer.status_code} without a message id")
        chat = result.get("chat")
        return Receipt(remote_id=str(message_id), url=_message_url(chat if isinstance(chat, dict) else {}, message_id),
                       note=f"reply to {reply_to}" if reply_to else None)

    async def check(self) -> CheckResult:
        try:
            return await self._check()
        finally:
            await self.close()

    async def _check(self) -> CheckResult:
        me = await self._call("getMe", {})
        if isinstance(me, Failure) or not me.is_success:
            return self._refused(me)
        bot = _result(me)
        name = f"@{bot.get('username', bot.get('id'))}"
        chat = await self._call("getChat", {"chat_id": self.config.chat_id})
        if isinstance(chat, Failure) or not chat.is_success:
            return self._refused(chat)
        kind = str(_result(chat).get("type", "chat"))
        member = await self._call("getChatMember", {"chat_id": self.config.chat_id, "user_id": bot.get("id")})
        if isinstance(member, Failure) or not member.is_success:
            return self._refused(member)
        rights = _result(member)
        status = str(rights.get("status", ""))
        if kind == "channel":
            may_post = status == "creator" or (status == "administrator" and rights.get("can_post_messages", True))
        else:
            may_post = status in GROUP_POSTERS or (status == "restricted" and bool(rights.get("can_send_messages")))
        if not may_post:
            role = "an administrator without the right to post" if status == "administrator" else f"'{status}' there"
            return CheckResult(False, f"bot {name} may not post in {kind} {self.chat} (it is {role}): "
                                      f"{self._admin_hint()}")
        return CheckResult(True, f"bot {name} may post in {kind} {self.chat}")

    def _refused(self, answer: httpx.Response | Failure) -> CheckResult:
        failure = answer if isinstance(answer, Failure) else self.failure(answer)
        return CheckResult(False, secrets.redact(failure.reason))

    def _admin_hint(self) -> str:
        return f"add the bot to {self.chat} as an administrator allowed to post messages"

    def failure(self, response: httpx.Response) -> Failure:
        """What a Bot API refusal means, in words that say what to do; the token is never part of it."""
        data = json_of(response)
        data = data if isinstance(data, dict) else {}
        said = secrets.excerpt(str(data.get("description") or ""))
        parameters = data.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        status = response.status_code
        lowered = said.lower()
        if status == 429 or status >= 500:
            wait = parameters.get("retry_after")
            retry_at = retry_at_in(float(wait)) if isinstance(wait, int | float) else None
            return failure_from_response(response, "", detail=said or None, retry_at=retry_at)
        if status == 401:
            return Failure(f"Telegram refused the bot token (401 Unauthorized): get a new one from @BotFather "
                           f"(/token) and update setting 'token' of channel '{self.name}'", retryable=False)
        if status == 404:
            return Failure("Telegram answered 404 Not Found: the bot token is incomplete, or api_base is not the "
                           "Bot API", retryable=False)
        if "migrate_to_chat_id" in parameters:
            return Failure(f"the group {self.chat} became a supergroup: set chat_id to "
                           f"{parameters['migrate_to_chat_id']}", retryable=False)
        if "chat not found" in lowered:
            return Failure(f"Telegram knows no chat {self.chat} (chat not found): check chat_id (@username of a "
                           f"public channel or group, or its numeric id) and {self._admin_hint()}", retryable=False)
        if status == 403 or "rights" in lowered or "not a member" in lowered:
            return Failure(f"Telegram refused to post in {self.chat} ({said or f'HTTP {status}'}): "
                           f"{self._admin_hint()}", retryable=False)
        return Failure(f"Telegram refused the message (HTTP {status}){f': {said}' if said else ''}", retryable=False)


def _result(response: httpx.Response) -> dict[str, Any]:
    data = json_of(response)
    result = data.get("result") if isinstance(data, dict) else None
    return result if isinstance(result, dict) else {}


def _message_url(chat: Mapping[str, Any], message_id: Any) -> str | None:
    """The t.me link of a message: public for a chat with a username, members-only for a private supergroup."""
    username = chat.get("username")
    if isinstance(username, str) and username:
        return f"https://t.me/{username}/{message_id}"
    chat_id = str(chat.get("id", ""))
    if chat_id.startswith("-100"):
        return f"https://t.me/c/{chat_id[4:]}/{message_id}"
    return None
