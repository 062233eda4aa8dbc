"""`type: apprise`: the message to every Apprise URL of the channel (Signal, Discord, Matrix, ntfy, ...).

Each URL gets its own Apprise object and they are notified at once, so a failure names the URL that
failed, by scheme and host only: URLs carry tokens. A retry goes only to the URLs that have not taken the
message yet in this run. Apprise logs through the `apprise` logger, URLs and headers included at some
levels: that logger prints nothing here; its warnings are only read to tell an HTTP status.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from playbook import secrets
from playbook.publishers.base import (
    ChannelConfig,
    ChannelContext,
    CheckResult,
    Delivery,
    Failure,
    Publisher,
    Receipt,
)
from playbook.publishers.limits import Limit, Measure

UNKNOWN_URL = ("not a URL Apprise knows: check its scheme and the parts that service needs "
               "(the Apprise wiki lists every service)")
# How Apprise's plugins word an HTTP answer in their warnings: "..., error=401."
STATUS_SAID = re.compile(r"error=(\d{3})\b")
REFUSALS = {401: "refused the credentials", 403: "refused access", 404: "does not know this address",
            400: "refused the message", 413: "refused the message as too long"}

_said: ContextVar[list[str] | None] = ContextVar("apprise_said", default=None)


class _Collect(logging.Handler):
    """Keeps Apprise's warnings for the notification under way in this context, and prints nothing."""

    def emit(self, record: logging.LogRecord) -> None:
        found = _said.get()
        if found is not None:
            found.append(record.getMessage())


def quiet_apprise() -> None:
    """Stop Apprise's logger from printing (its messages can hold URLs); its warnings are still collected."""
    logger = logging.getLogger("apprise")
    if not any(isinstance(h, _Collect) for h in logger.handlers):
        logger.addHandler(_Collect(logging.WARNING))
        logger.propagate = False


def instantiate(url: str) -> Any:
    """Apprise's plugin for `url`, or None when Apprise cannot use it (nothing is logged where anyone sees)."""
    quiet_apprise()
    import apprise

    return apprise.Apprise.instantiate(url)


def _known(url: str) -> str:
    if instantiate(url) is None:
        raise ValueError(UNKNOWN_URL)
    return url


AppriseUrl = Annotated[str, AfterValidator(_known)]


def where(plugin: Any, url: str) -> str:
    """scheme://host[:port] of a URL, from Apprise's own masked form where a token stands in the host."""
    shown = urlsplit(str(plugin.url(privacy=True))) if plugin is not None else urlsplit(url)
    host = shown.netloc.rpartition("@")[2]
    return secrets.redact(f"{shown.scheme}://{host}" if host else f"{shown.scheme}://")


@dataclass(frozen=True)
class ServiceLength:
    """Characters of the message against the tightest limit among the channel's services (Discord: 2000)."""

    limit: int
    service: str

    @property
    def name(self) -> str:
        return f"characters ({self.service})"

    def measure(self, text: str) -> Measure:
        return Measure(len(text), self.limit, "characters", f"{self.service}'s limit")


class AppriseConfig(ChannelConfig):
    urls: list[AppriseUrl] = Field(min_length=1, description="Apprise URLs; put tokens in ${VARIABLES}")
    block: Literal["short", "body"] = Field(default="body", description="The block sent as the message")


@dataclass
class _Progress:
    """What one delivery has done so far in this run: URLs still to notify, and those that refused for good."""

    remaining: set[int]
    refused: dict[int, str]


class ApprisePublisher(Publisher[AppriseConfig]):
    """Notifies every URL of the channel with the `title` block and the chosen block, all at once."""

    Config = AppriseConfig
    blocks = ("body",)
    optional_blocks = ("title",)
    typical_latency = 1.0
    idempotency = ("Apprise services take no idempotency key: a notification whose answer was lost is sent again; "
                   "a retry goes only to the URLs that had not taken it, but a resumed run notifies them all")

    def __init__(self, name: str, config: AppriseConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        # The chosen block is a setting, so the block a template must have is known per channel.
        self.blocks = (str(config.block),)  # type: ignore[misc]
        self._progress: dict[str, _Progress] = {}
        quiet_apprise()
        for url in self._resolved():
            secrets.register(url)

    def _resolved(self) -> list[str]:
        """The URLs whose ${VARIABLES} are all set (an offline channel may still have some unset)."""
        return [str(url) for url in self.config.urls if "${" not in str(url)]

    # -- what it needs and accepts ------------------------------------------------------------------
    def limits(self) -> Mapping[str, Limit]:
        quiet_apprise()
        import apprise

        # The scheme alone names the service and its limit: known even while a URL's ${VARIABLES} are unset.
        services: Any = apprise.NotificationManager()  # type: ignore[no-untyped-call]
        schemes = [url.partition("://")[0].lower() for url in map(str, self.config.urls) if "://" in url]
        known = [services[scheme] for scheme in schemes if scheme in services]
        tightest = min((s for s in known if s.body_maxlen > 0), key=lambda s: s.body_maxlen, default=None)
        if tightest is None:
            return {}
        return {str(self.config.block): ServiceLength(int(tightest.body_maxlen), str(tightest.service_name))}

    def validate(self) -> list[str]:
        return [f"setting 'urls.{n}': {UNKNOWN_URL}" for n, url in enumerate(self.config.urls)
                if "${" not in str(url) and instantiate(str(url)) is None]

    def settings(self) -> dict[str, Any]:
        shown = self.config.model_dump(mode="json", exclude={"type", "urls"}, exclude_none=True)
        return {"urls": [where(instantiate(u), u) if "${" not in u else u for u in map(str, self.config.urls)],
                **shown}

    # -- the network ---------------------------------------------------------------------------------
    async def check(self) -> CheckResult:
        plugins = [instantiate(str(url)) for url in self.config.urls]
        unknown = [f"urls.{n}" for n, plugin in enumerate(plugins) if plugin is None]
        if unknown:
            return CheckResult(False, f"{', '.join(unknown)}: {UNKNOWN_URL}")
        named = ", ".join(f"{where(p, str(u))} ({p.service_name})" for p, u in zip(plugins, self.config.urls,
                                                                                    strict=True))
        return CheckResult(True, f"{named}; Apprise cannot check a service without notifying it, so nothing was sent")

    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        urls = [str(url) for url in self.config.urls]
        progress = self._progress.setdefault(delivery.key, _Progress(set(range(len(urls))), {}))
        title = delivery.message.block("title")
        body = delivery.message.block(str(self.config.block))
        tried = sorted(progress.remaining)
        outcomes = await asyncio.gather(*(asyncio.to_thread(self._notify, urls[n], title, body) for n in tried))
        failed: list[str] = []
        for n, (plugin, ok, said) in zip(tried, outcomes, strict=True):
            name = where(plugin, urls[n])
            if ok:
                progress.remaining.discard(n)
                continue
            status = _status(said)
            if plugin is None:
                progress.remaining.discard(n)
                progress.refused[n] = f"urls.{n} ({name}): {UNKNOWN_URL}"
            elif status in REFUSALS:
                progress.remaining.discard(n)
                progress.refused[n] = (f"{name} {REFUSALS[status]} (HTTP {status}): check urls.{n} of channel "
                                       f"'{self.name}'")
            else:
                failed.append(f"{name} failed" + (f" (HTTP {status})" if status else ""))
        reasons = failed + [progress.refused[n] for n in sorted(progress.refused)]
        if not reasons:
            self._progress.pop(delivery.key, None)
            return Receipt(note=f"{len(urls)} URL(s) notified")
        # Retried only while a URL may still take it; those that refused for good are not asked again.
        return Failure("; ".join(reasons), retryable=bool(progress.remaining))

    def _notify(self, url: str, title: str, body: str) -> tuple[Any, bool, list[str]]:
        """(plugin, whether it took the message, Apprise's warnings) for one URL; runs in a worker thread."""
        plugin = instantiate(url)
        if plugin is None:
            return None, False, []
        limit = self.config.timeout.total_seconds()
        plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout or limit), limit)
        plugin.socket_read_timeout = min(float(plugin.socket_read_timeout or limit), limit)
        import apprise

        notifier = apprise.Apprise()
        notifier.add(plugin)
        said: list[str] = []
        token = _said.set(said)
        try:
            ok = bool(notifier.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT))
        finally:
            _said.reset(token)
        return plugin, ok, said


def _status(said: list[str]) -> int | None:
    """The HTTP status Apprise's warnings name, if any."""
    for line in said:
        match = STATUS_SAID.search(line)
        if match:
            return int(match.group(1))
    return None
