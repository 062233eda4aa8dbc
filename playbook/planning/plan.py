"""A post's plan: every channel x language rendered and measured before anything is sent."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from playbook.errors import PlaybookError
from playbook.home.channel_config import Channels
from playbook.home.model import Playbook
from playbook.ledger.contract import utcnow
from playbook.publishers.base import Message, Publisher, Stage
from playbook.publishers.recipients import Recipient
from playbook.rendering.messages import BlockMeasure, Composer, phase_messages
from playbook.rendering.templates import RenderContext


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
    # What earlier posts left unconfirmed on the channels and languages of this one ("post 1 · x fr: failed
    # (...)"): publishing this post supersedes it (never sent after the newer words). Shown before asking.
    supersedes: list[str] = field(default_factory=list)


def build_plan(channels: Channels, playbook: Playbook, phase: str, variables: dict[str, str | None],
               incident_id: str, detected_at: datetime, deadline: datetime, *, drill: bool,
               offline: bool, next_update: datetime | bool | None = True,
               issued_at: datetime | None = None, holding: bool = False,
               only: Collection[str] | None = None) -> PostPlan:
    """Render and check every message of a post. Raises on any problem: then nothing is sent.

    `next_update` True computes the next update time from now; a resumed post passes the one it recorded.
    `holding` renders it as a holding update (`incident.holding` true in the templates). `only` plans just
    those of the phase's channels (a holding update's): the phase's others are left out of the plan, and a
    channel the phase does not publish to is not planned.
    """
    composer = Composer(channels.home, playbook)
    if next_update is True:
        next_update = None if phase == playbook.last_phase else utcnow() + playbook.update_every
    elif next_update is False:
        next_update = None
    context = composer.context(incident_id, detected_at, phase, next_update, drill=drill, issued_at=issued_at,
                               holding=holding)
    plans: list[ChannelPlan] = []
    for name in playbook.phases[phase].channels:
        if only is not None and name not in only:
            continue
        channels.require(name, used_by=f"playbook '{playbook.id}' phase '{phase}'")
        target, stands_in_for, skipped = name, None, None
        if drill:
            sandbox = channels.sandbox_of(name)
            if sandbox is None:
                skipped = "no sandbox channel for this channel in channels.yaml 'drill:' (skipped in a drill)"
            else:
                target, stands_in_for = sandbox, name
        # In a drill the live channel is only measured against, never sent to: its secrets need not be set.
        live = channels.publisher(name, playbook.languages, offline=True) if drill else None
        publisher = live if skipped and live is not None else channels.publisher(target, playbook.languages,
                                                                                  offline=offline)
        languages = [lang for lang in playbook.languages if lang in publisher.languages()]
        plan = ChannelPlan(target, channels.type_of(target), publisher, languages, skipped=skipped,
                           stands_in_for=stands_in_for)
        plans.append(plan)
        if skipped:
            continue
        problems = publisher.validate()
        if problems:
            raise PlaybookError(f"channel '{target}': {problems[0]}")
        first: dict[str, Recipient] = {}
        if publisher.per_recipient:
            plan.recipient_count = publisher.recipient_count()
            audience = publisher.audience(languages)
            plan.recipients_by_lang, first = audience.counts, audience.first
        # A per-recipient channel's message is previewed for the first recipient of each language (a sample one
        # when there is none); the engine renders each recipient's own while sending.
        for rendered in phase_messages(composer, phase, languages, {target: publisher}, variables, context,
                                       first={target: first}):
            lang = rendered.lang
            [channel_message] = rendered.channels
            message = channel_message.rendered()
            measures = channel_message.measures
            checked = [(target, measures)]
            if live is not None and live is not publisher:
                # A drill passes only what the live channel would take: the sandbox's limits are not the day's.
                measures = composer.measure(composer.message(phase, lang, variables, context, live,
                                                             first.get(lang)), live)
                checked.append((name, measures))
            for channel, channel_measures in checked:
                for measured in channel_measures:
                    if not measured.measure.ok:
                        raise PlaybookError(
                            f"{composer.renderer.shown(rendered.template)}: block '{measured.block}' "
                            f"is too long for channel '{channel}': {measured.measure}; nothing was sent"
                        )
            plan.measures[lang] = measures
            plan.messages[lang] = message
    if drill and plans and all(plan.skipped for plan in plans):
        raise PlaybookError(
            f"nothing to drill: channels.yaml has no `drill:` section mapping the channels of playbook "
            f"'{playbook.id}' phase '{phase}' ({', '.join(p.name for p in plans)}) to sandbox channels: add one "
            "(`drill:` then `<live channel>: <sandbox channel>`), or run without --drill; nothing was sent"
        )
    return PostPlan(playbook.id, phase, incident_id, deadline, composer, context, variables, plans, drill,
                    stage_of(playbook, phase))


def stage_of(playbook: Playbook, phase: str) -> Stage:
    """Where `phase` stands in `playbook`, as the channels that show a state receive it."""
    declared = playbook.phases[phase].impact if phase in playbook.phases else None
    return Stage(first=phase == playbook.first_phase, last=phase == playbook.last_phase, impact=declared)


