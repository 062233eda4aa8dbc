"""`playbook render`: what one phase would say, in one language, on each of its channels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from playbook.errors import PlaybookError, did_you_mean, one_of
from playbook.home.channel_config import load_channels
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.publishers.base import Message, Publisher
from playbook.rendering.messages import BlockMeasure, Composer, phase_messages
from playbook.rendering.variables import resolve


@dataclass
class ChannelPreview:
    channel: str
    type: str
    message: Message
    measures: list[BlockMeasure]


@dataclass
class Preview:
    playbook: str
    phase: str
    lang: str
    template: str
    message: Message
    channels: list[ChannelPreview] = field(default_factory=list)
    holding: bool = False


def render_preview(home: Home, playbook_id: str, phase: str, lang: str | None, channel: str | None,
                   given: Mapping[str, str], drill: bool = False, holding: bool = False) -> Preview:
    """One phase in one language, on its channels; with `holding`, as the worker's holding update on its channels."""
    playbook = home.load_playbook(playbook_id)
    if phase not in playbook.phases:
        raise PlaybookError(
            f"playbook '{playbook.id}' has no phase '{phase}'{did_you_mean(phase, playbook.phases)};"
            f" phases: {', '.join(playbook.phases)}"
        )
    lang = lang or playbook.default_language
    if lang not in playbook.languages:
        raise PlaybookError(f"playbook '{playbook.id}' is not written in '{lang}'; languages: "
                            f"{', '.join(playbook.languages)}")
    names = playbook.phases[phase].channels
    if holding:
        names = _holding_channels(playbook, phase)
    if channel is not None and channel not in names:
        whose = f"a holding update of phase '{phase}' is not sent to" if holding else \
            f"phase '{phase}' does not publish to"
        raise PlaybookError(f"{whose} channel '{channel}'{did_you_mean(channel, names)}; its channels: {one_of(names)}")
    variables = resolve(playbook, given, samples=True)
    composer = Composer(home, playbook)
    channels = load_channels(home)
    publishers: dict[str, Publisher[Any]] = {}
    for name in [channel] if channel else names:
        channels.require(name, used_by=f"playbook '{playbook.id}'")
        publishers[name] = channels.publisher(name, playbook.languages, offline=True)
    # The template with every block first, then again for each channel: it shows only the blocks that channel sends.
    [rendered] = phase_messages(composer, phase, [lang], publishers, variables,
                                composer.preview_context(phase, drill=drill, holding=holding), whole=True)
    preview = Preview(playbook.id, phase, lang, composer.renderer.shown(rendered.template), rendered.whole_message(),
                      holding=holding)
    for checked in rendered.channels:
        preview.channels.append(ChannelPreview(checked.channel, channels.type_of(checked.channel),
                                               checked.rendered(), checked.measures))
    return preview


def _holding_channels(playbook: Playbook, phase: str) -> list[str]:
    """The channels a holding update of `phase` goes to; an error when the playbook sends none for that phase."""
    if playbook.holding is None:
        raise PlaybookError(f"playbook '{playbook.id}' sends no holding updates: add "
                            "`holding: {after: 15m, channels: [...]}` to it first")
    if phase == playbook.last_phase:
        raise PlaybookError(f"phase '{phase}' is the last: no holding update follows it")
    names = [name for name in playbook.holding.channels if name in playbook.phases[phase].channels]
    if not names:
        raise PlaybookError(f"phase '{phase}' publishes to none of the holding channels "
                            f"({', '.join(playbook.holding.channels)}): no holding update follows it")
    return names
