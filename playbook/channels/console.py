"""`type: console`: prints each message on the terminal; for trying a playbook out."""

from __future__ import annotations

import sys
from typing import Literal

from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Publisher, Receipt


class ConsoleConfig(ChannelConfig):
    stream: Literal["stdout", "stderr"] = "stderr"


class ConsolePublisher(Publisher[ConsoleConfig]):
    Config = ConsoleConfig
    blocks = ()
    optional_blocks = ("title", "short", "body")
    idempotency = "printing cannot be taken back; a resume prints an unconfirmed message again"

    async def check(self) -> CheckResult:
        return CheckResult(True, f"prints to {self.config.stream}")

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        stream = sys.stdout if self.config.stream == "stdout" else sys.stderr
        blocks = delivery.message.blocks
        text = blocks.get("title", "")
        body = blocks.get("body") or blocks.get("short", "")
        stream.write(f"--- {self.name} [{delivery.lang}] {delivery.phase} ---\n{text}\n\n{body}\n")
        stream.flush()
        return Receipt(remote_id=None, url=None)
