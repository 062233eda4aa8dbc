"""Fake Slack and Teams incoming webhooks on 127.0.0.1, answering in each app's own words.

Slack: POST /services/T.../B.../<secret> answers 200 "ok", or a plain-text error word (400 no_text,
invalid_blocks; 403 invalid_token; 404 no_service; 410 channel_is_archived) as Slack does.
Teams: a Workflows trigger (/workflows/<id>/triggers/manual/paths/invoke?...&sig=<secret>) answers 202
with no body, or Azure's JSON errors ({"error": {"code", "message"}}).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.provider import Answer, ProviderFake, Received

SLACK_HEADER_LIMIT = 150
SLACK_SECTION_LIMIT = 3000
SLACK_BLOCKS_LIMIT = 50
TEAMS_MESSAGE_BYTES = 28 * 1024
CARD = "application/vnd.microsoft.card.adaptive"
# An Office 365 connector's way of saying Teams refused: HTTP 200, and this text.
CONNECTOR_THROTTLED = ("Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 "
                       "with ContextId tcid=0,server=msgapi-production-weu-azsc2-1-22,cv=1Dc0.0..")


@dataclass(frozen=True)
class Delivered:
    path: str
    payload: dict[str, Any]
    at: float


class FakeSlack(ProviderFake):
    """Slack's incoming webhooks: `hook()` makes one and returns its URL; `revoke` and `delete` end it."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: dict[str, str] = {}
        self.messages: list[Delivered] = []

    def hook(self) -> str:
        path = f"/services/T0EXAMPLE1/B0{len(self.hooks) + 1:08d}/{secrets.token_urlsafe(18).replace('-', 'x')}"
        self.hooks[path] = "active"
        return self.url + path

    def revoke(self, url: str) -> None:
        self.hooks[urlsplit(url).path] = "revoked"

    def archive(self, url: str) -> None:
        self.hooks[urlsplit(url).path] = "archived"

    def answer(self, request: Received) -> Answer:
        state = self.hooks.get(request.path)
        if request.method != "POST" or state is None:
            return Answer(404, "no_service")
        if state == "revoked":
            return Answer(403, "invalid_token")
        if state == "archived":
            return Answer(410, "channel_is_archived")
        try:
            payload = json.loads(request.body)
        except ValueError:
            return Answer(400, "invalid_payload")
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return Answer(400, "no_text")
        if not _valid_blocks(payload.get("blocks", [])):
            return Answer(400, "invalid_blocks")
        with self._lock:
            self.messages.append(Delivered(request.path, payload, request.at))
        return Answer(200, "ok")


def _valid_blocks(blocks: Any) -> bool:
    """Block Kit's rules that a message can break: at most 50 blocks, header and section text lengths."""
    if not isinstance(blocks, list) or len(blocks) > SLACK_BLOCKS_LIMIT:
        return False
    for block in blocks:
        text = (block.get("text") or {}).get("text", "") if isinstance(block, dict) else ""
        if block.get("type") == "header" and not 0 < len(text) <= SLACK_HEADER_LIMIT:
            return False
        if block.get("type") == "section" and not 0 < len(text) <= SLACK_SECTION_LIMIT:
            return False
    return True


class FakeTeams(ProviderFake):
    """Power Automate's "When a Teams webhook request is received" triggers: `workflow()` makes one."""

    def __init__(self) -> None:
        super().__init__()
        self.signatures: dict[str, str] = {}
        self.cards: list[Delivered] = []

    def workflow(self) -> str:
        workflow = secrets.token_hex(16)
        self.signatures[workflow] = secrets.token_urlsafe(32).replace("-", "x")
        return (f"{self.url}/workflows/{workflow}/triggers/manual/paths/invoke?api-version=2016-06-01"
                f"&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.signatures[workflow]}")

    def answer(self, request: Received) -> Answer:
        parts = request.path.strip("/").split("/")
        if len(parts) != 6 or parts[0] != "workflows" or request.method != "POST":
            return Answer(404, b"")
        signature = self.signatures.get(parts[1])
        if signature is None:
            return _azure(404, "WorkflowNotFound", f"The workflow '{parts[1]}' could not be found.")
        if request.query.get("sig") != signature:
            return _azure(401, "DirectApiInvalidAuthorizationSignature",
                          "The provided authorization signature is not valid for the request.")
        if len(request.body) > TEAMS_MESSAGE_BYTES:
            return _azure(413, "MessageTooLarge", "The message is larger than 28 KB.")
        payload = request.json
        attachments = payload.get("attachments") if isinstance(payload, dict) else None
        if (payload.get("type") != "message" or not isinstance(attachments, list) or not attachments
                or attachments[0].get("contentType") != CARD
                or attachments[0].get("content", {}).get("type") != "AdaptiveCard"):
            return _azure(400, "InvalidRequestContent", "The request content is not an Adaptive Card message.")
        with self._lock:
            self.cards.append(Delivered(request.path, payload, request.at))
        return Answer(202, b"")


def _azure(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}})
