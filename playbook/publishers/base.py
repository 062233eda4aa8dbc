"""The publisher interface: a typed config, the blocks it uses, its limits, validate, check, publish."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from playbook.durations import Duration
from playbook.errors import did_you_mean
from playbook.ledger.statuses import DeliveryStatus
from playbook.publishers.limits import Limit
from playbook.publishers.recipients import Audience
from playbook.publishers.recipients import Recipient as Recipient
from playbook.textsafe import web_link


class ChannelConfig(BaseModel):
    """Settings every channel accepts; a publisher's Config adds its own (unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str
    languages: list[str] | None = None
    description: str | None = None
    timeout: Duration = Field(default=timedelta(seconds=15), description="Limit of one attempt")
    retry_for: Duration = Field(
        default=timedelta(minutes=5),
        description="Retries go on at least this long, even when the window is already missed",
    )

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
            for key in data:
                if key not in known:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown setting '{key}'{hint}",
                        {"key": key, "hint": did_you_mean(str(key), known)},
                    )
        return data


C = TypeVar("C", bound=ChannelConfig)


@dataclass(frozen=True)
class Message:
    """The rendered blocks of one phase in one language (and, for per-recipient channels, one recipient)."""

    lang: str
    blocks: Mapping[str, str]
    template: str = ""

    def block(self, name: str) -> str:
        return self.blocks.get(name, "")


@dataclass(frozen=True)
class Receipt:
    """Proof of a delivery: what the provider called it and where it can be seen."""

    remote_id: str | None = None
    url: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        # The link becomes an href in the timeline, chats and pages: a javascript: or data: one is dropped here,
        # once for every channel, plugins included.
        if self.url is not None and web_link(self.url) is None:
            object.__setattr__(self, "url", None)


@dataclass(frozen=True)
class Failure:
    """A delivery that did not go out, and whether another attempt could succeed."""

    reason: str
    retryable: bool
    retry_at: datetime | None = None
    # A permanent refusal of one recipient (SMTP 5xx): recorded, never retried, not a channel failure.
    rejected: bool = False
    # The channel's server could not be reached at all (connection refused): the whole channel is down, and
    # a per-recipient channel is retried as a whole rather than recipient by recipient.
    unreachable: bool = False


@dataclass(frozen=True)
class Stage:
    """Where a phase stands in its playbook, for channels that show a state rather than a message."""

    first: bool = False
    last: bool = False
    # The phase's declared `impact:`, if it has one.
    impact: Literal["none", "minor", "major", "critical"] | None = None


@dataclass(frozen=True)
class Link:
    """Another delivery of the same post, as a briefing channel shows it: its status and, once sent, its link."""

    channel: str
    lang: str
    status: DeliveryStatus
    url: str | None = None

    def __post_init__(self) -> None:
        # As in a Receipt: a link shown in a chat must be a web address, whoever made this one.
        if self.url is not None and web_link(self.url) is None:
            object.__setattr__(self, "url", None)


@dataclass(frozen=True)
class PastPost:
    """A post of an incident this channel published, as the ledger recorded it: what a channel that shows the
    whole history (the status page) rebuilds itself from, on whichever machine publishes."""

    incident_id: str
    playbook_id: str
    drill: bool
    detected_at: datetime
    seq: int
    phase: str
    issued_at: datetime
    # The channel's delivery key of the post, without its language part.
    key: str
    # Each language's blocks, as the post recorded them (secrets masked).
    texts: Mapping[str, Mapping[str, str]]
    next_update_at: datetime | None = None
    timezone: str = "UTC"
    stage: Stage = Stage()


@dataclass(frozen=True)
class Delivery:
    """One message to one channel in one language (and to one recipient, for per-recipient channels)."""

    key: str
    incident_id: str
    playbook_id: str
    phase: str
    channel: str
    lang: str
    message: Message
    deadline: datetime
    recipient: Recipient | None = None
    # The receipt of this channel's first delivery in this language for the incident: for threads.
    thread: Receipt | None = None
    drill: bool = False
    attempt: int = 1
    # For a briefing channel (Publisher.briefing): every delivery of the post's other channels, in plan order.
    links: tuple[Link, ...] = ()
    # When the message promises the next update (None for the last phase): the status page shows it.
    next_update_at: datetime | None = None
    # When the incident was detected: the status page dates the incident from it, as the messages do.
    detected_at: datetime | None = None
    # The playbook's time zone and the phase's place in it: the status page needs them, and a publisher never
    # reads the playbook itself.
    timezone: str = "UTC"
    stage: Stage = Stage()
    # For a channel that shows a history (Publisher.history_size): every post of it the ledger holds, oldest
    # first, the post being published included in each of its languages.
    history: tuple[PastPost, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


@dataclass(frozen=True)
class Budget:
    """How long a channel needs to deliver a phase, and the arithmetic behind the figure."""

    seconds: float
    arithmetic: str
    # What sets the figure: "parallel" (connections x latency), "rate" (the `rate` cap) or "provider".
    bound: str = "parallel"
    messages: int = 0


def host_of(url: str) -> str:
    """The host (and port) of a URL: what an error may name, unlike a path or query that may hold a token."""
    return urlsplit(url).netloc.rpartition("@")[2] or "the server"


@dataclass
class ChannelContext:
    """What a publisher may know of the world: the home folder and the playbook languages."""

    home: Path
    languages: list[str]
    secrets: frozenset[str] = frozenset()


class Publisher(ABC, Generic[C]):
    """Base of every channel type. Subclasses set Config, blocks and limits, and implement publish."""

    Config: ClassVar[type[ChannelConfig]]
    # Blocks the channel needs from every template it sends; a missing one is a validation error.
    blocks: ClassVar[tuple[str, ...]] = ("short",)
    # Blocks it uses when the template has them.
    optional_blocks: ClassVar[tuple[str, ...]] = ()
    # The remote side drops a second request carrying the same idempotency key.
    deduplicates: ClassVar[bool] = False
    # Seconds one delivery usually takes, for the window budget when no drill has measured it.
    typical_latency: ClassVar[float] = 1.0
    # The provider's own posting limit (posts, per period), which no retry can beat.
    rate_limit: ClassVar[tuple[int, timedelta] | None] = None
    # One sentence for the README and `channels`: what an unconfirmed delivery may mean here.
    idempotency: ClassVar[str] = "an unconfirmed delivery may have been received: resume sends it again"
    # A briefing channel (a team chat) runs after the post's other channels and receives their outcomes in
    # Delivery.links.
    briefing: ClassVar[bool] = False

    def __init__(self, name: str, config: C, context: ChannelContext) -> None:
        self.name = name
        self.config = config
        self.context = context

    # -- what it needs and accepts ------------------------------------------------------------------
    def limits(self) -> Mapping[str, Limit]:
        """The limit of each block this channel sends (block name -> limit)."""
        return {}

    @property
    def per_recipient(self) -> bool:
        return False

    def recipients(self) -> Iterator[Recipient]:
        """Recipients of a per-recipient channel, streamed (never all in memory at once)."""
        return iter(())

    def recipient_count(self) -> int | None:
        return None

    def audience(self, languages: list[str]) -> Audience:
        """How many recipients each of `languages` has, and the first of each: what a plan shows and samples."""
        return Audience.of(self.recipients(), languages)

    @property
    def concurrency(self) -> int:
        """How many deliveries of this channel may be in flight at once."""
        return 4

    def languages(self) -> list[str]:
        return list(self.config.languages or self.context.languages)

    def budget(self, messages: int, latency: float | None = None, *, lanes: float | None = None,
               source: str | None = None) -> Budget:
        """Time to deliver `messages` through this channel: connections, `rate` and provider limits.

        `latency` and `lanes` are what a run achieved (one delivery's seconds, deliveries in flight at once),
        `source` where they come from; without them, `typical_latency` over every connection."""
        seconds_each = latency if latency is not None else self.typical_latency
        source = source or ("measured" if latency is not None else "typical")
        lanes = lanes if lanes is not None else max(1, self.concurrency)
        by_lanes = messages * seconds_each / lanes
        parts = [f"{messages:,} message(s) x {seconds_each:.3f} s ({source}) / {lanes:g} in parallel "
                 f"= {by_lanes:,.0f} s"]
        seconds, bound = by_lanes, "parallel"
        rate = getattr(self.config, "rate", None)
        if rate:
            by_rate = messages / float(rate)
            parts.append(f"{messages:,} at {rate:g}/s (rate) = {by_rate:,.0f} s")
            if by_rate > seconds:
                seconds, bound = by_rate, "rate"
        if self.rate_limit is not None:
            count, period = self.rate_limit
            if messages > count:
                by_limit = (messages - 1) // count * period.total_seconds()
                parts.append(f"provider limit {count} per {period} = {by_limit:,.0f} s")
                if by_limit > seconds:
                    seconds, bound = by_limit, "provider"
        return Budget(seconds, "; ".join(parts), bound, messages)

    def history_size(self) -> int | None:
        """How many closed incidents the channel shows beside the open ones, for a channel that shows its whole
        history (Delivery.history); None for a channel that sends messages."""
        return None

    def validate(self) -> list[str]:
        """Problems found without the network (an unreadable file, a bad address); [] when fine."""
        return []

    def warnings(self) -> list[str]:
        """What `playbook validate` should point out without failing (rows of a list that will be skipped)."""
        return []

    def settings(self) -> dict[str, Any]:
        """Settings for listings, secrets masked by the caller."""
        return self.config.model_dump(mode="json", exclude={"type"}, exclude_none=True)

    # -- the network ---------------------------------------------------------------------------------
    async def open(self) -> None:
        """Prepare sessions or connection pools before the first publish."""

    async def close(self) -> None:
        """Release what open() took."""

    @abstractmethod
    async def check(self) -> CheckResult:
        """Credentials and reachability, publishing nothing."""

    @abstractmethod
    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        """Send one delivery; never raise for the provider's answers, return a Failure instead."""

