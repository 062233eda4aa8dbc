"""`type: file`: one JSON line per delivery in a file of the home; an archive, and the tests' workhorse."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Publisher, Receipt


class FileConfig(ChannelConfig):
    path: str


class FilePublisher(Publisher[FileConfig]):
    """Appends under an exclusive lock and skips a key already in the file: a resume never repeats a line."""

    Config = FileConfig
    blocks = ()
    optional_blocks = ("title", "short", "body", "html")
    deduplicates = True
    idempotency = "the file is read for the delivery's key before appending: never a repeat"

    @property
    def target(self) -> Path:
        path = Path(self.config.path)
        return path if path.is_absolute() else self.context.home / path

    def validate(self) -> list[str]:
        parent = self.target.parent
        existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK):
            return [f"folder {parent} cannot be written"]
        return []

    async def check(self) -> CheckResult:
        problems = self.validate()
        return CheckResult(not problems, problems[0] if problems else f"writable: {self.target}")

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        return await asyncio.to_thread(self._append, delivery)

    def _append(self, delivery: Delivery) -> Receipt | Failure:
        record = {
            "key": delivery.key,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "incident": delivery.incident_id,
            "playbook": delivery.playbook_id,
            "phase": delivery.phase,
            "channel": delivery.channel,
            "lang": delivery.lang,
            "drill": delivery.drill,
            "recipient": delivery.recipient.address if delivery.recipient else None,
            "blocks": dict(delivery.message.blocks),
        }
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            with self.target.open("a+", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.seek(0)
                number = 0
                for number, line in enumerate(handle, start=1):
                    if f'"key": {json.dumps(delivery.key)}' in line:
                        return Receipt(remote_id=self._where(number), url=None, note="already in the file")
                handle.seek(0, os.SEEK_END)
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            return Failure(f"cannot write {self.target}: {exc.strerror}", retryable=False)
        return Receipt(remote_id=self._where(number + 1), url=None)

    def _where(self, line: int) -> str:
        """`outbox/x.jsonl:12`, as editors and `grep -n` write a place: a reader can open it at that line."""
        try:
            shown = self.target.relative_to(self.context.home)
        except ValueError:
            shown = self.target
        return f"{shown}:{line}"
