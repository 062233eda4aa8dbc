"""`playbook channels`: each channel with its type, languages, limits, recipients and masked settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playbook import secrets
from playbook.errors import PlaybookError
from playbook.home.channel_config import load_channels
from playbook.home.locate import Home
from playbook.publishers.base import CheckResult, Publisher

SECRET_WORDS = ("secret", "password", "token", "key", "sid")


@dataclass
class ChannelInfo:
    name: str
    type: str
    languages: list[str]
    limits: str
    recipients: int | None
    settings: dict[str, str]
    check: CheckResult | None
    # What a delivery left unconfirmed by a crash may mean for this type, and what `resume` does about it.
    unconfirmed: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "languages": self.languages, "limits": self.limits,
            "recipients": self.recipients, "settings": self.settings, "unconfirmed": self.unconfirmed,
            "check": None if self.check is None else {"ok": self.check.ok, "detail": self.check.detail},
        }


def _masked_settings(publisher: Publisher[Any], raw: dict[str, Any]) -> dict[str, str]:
    shown: dict[str, str] = {}
    for key, value in publisher.settings().items():
        written = raw.get(key)
        if any(word in key.lower() for word in SECRET_WORDS) or (isinstance(written, str) and "${" in written):
            shown[key] = secrets.MASK if not isinstance(written, str) or "${" not in written else written
        else:
            shown[key] = secrets.redact(str(value))
    return shown


def list_channels(home: Home, *, check: bool) -> list[ChannelInfo]:
    channels = load_channels(home)
    languages: list[str] = []
    for playbook_id in home.playbook_ids():
        try:
            languages += [lang for lang in home.load_playbook(playbook_id).languages if lang not in languages]
        except PlaybookError:
            continue
    listing: list[ChannelInfo] = []
    for name in channels.names():
        missing = channels.missing_env(name)
        publisher = channels.publisher(name, languages, offline=True)
        limits = ", ".join(f"{block}: {limit.name} ≤ {getattr(limit, 'limit', '')}"
                           for block, limit in publisher.limits().items()) or "none"
        result: CheckResult | None = None
        if check:
            if missing:
                result = CheckResult(False, f"{', '.join('$' + v for v in missing)} not set")
            else:
                problems = publisher.validate()
                result = CheckResult(False, problems[0]) if problems else run_check(publisher)
        listing.append(ChannelInfo(name, channels.type_of(name), publisher.languages(), limits,
                                   publisher.recipient_count(), _masked_settings(publisher, channels.raw[name]),
                                   result, publisher.idempotency))
    return listing


def run_check(publisher: Publisher[Any]) -> CheckResult:
    """A channel's online check, bounded in time; a plugin's exception becomes a failed check."""
    # Only --check runs an event loop: importing asyncio costs `playbook channels` a tenth of its start-up.
    import asyncio

    return asyncio.run(_check(publisher))


async def _check(publisher: Publisher[Any]) -> CheckResult:
    import asyncio

    try:
        return await asyncio.wait_for(publisher.check(), publisher.config.timeout.total_seconds() * 2)
    except TimeoutError:
        return CheckResult(False, "no answer in time")
    except Exception as exc:
        return CheckResult(False, secrets.redact(f"{type(exc).__name__}: {exc}"))
