"""What a post will send, rendered and checked before anything goes out: the engine's input."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from playbook.compose import BlockMeasure, Composer
from playbook.publishers.base import Publisher, Stage
from playbook.render import Message, RenderContext


@dataclass
class ChannelPlan:
    """One channel of a post: its publisher, languages and (for single-target channels) the messages."""

    name: str
    type: str
    publisher: Publisher[Any]
    languages: list[str]
    messages: dict[str, Message] = field(default_factory=dict)
    measures: dict[str, list[BlockMeasure]] = field(default_factory=dict)
    recipient_count: int | None = None
    # Per-recipient channels: how many recipients each language has (the first language takes the rest).
    recipients_by_lang: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None
    # In a drill: the live channel this sandbox stands in for.
    stands_in_for: str | None = None


@dataclass
class PostPlan:
    """Everything a post will send, rendered and checked before anything goes out."""

    playbook: str
    phase: str
    incident_id: str
    deadline: datetime
    composer: Composer
    context: RenderContext
    variables: dict[str, str | None]
    channels: list[ChannelPlan]
    drill: bool = False
    stage: Stage = field(default_factory=Stage)
