"""`playbook render`: what one phase would say, in one language, on each of its channels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from playbook.errors import PlaybookError, did_you_mean, one_of
from playbook.home.channel_config import load_channels
from playbook.home.locate import Home
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


def render_preview(home: Home, playbook_id: str, phase: str, lang: str | None, channel: str | None,
                   given: Mapping[str, str], drill: bool = False) -> Preview:
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
    if channel is not None and channel not in names:
        raise PlaybookError(f"phase '{phase}' does not publish to channel '{channel}'"
                            f"{did_you_mean(channel, names)}; its channels: {one_of(names)}")
    variables = resolve(playbook, given, samples=True)
    composer = Composer(home, playbook)
    channels = load_channels(home)
    publishers: dict[str, Publisher[Any]] = {}
    for name in [channel] if channel else names:
        channels.require(name, used_by=f"playbook '{playbook.id}'")
        publishers[name] = channels.publisher(name, playbook.languages, offline=True)
    # The template with every block first, then again for each channel: it shows only the blocks that channel sends.
    [rendered] = phase_messages(composer, phase, [lang], publishers, variables,
                                composer.preview_context(phase, drill=drill), whole=True)
    preview = Preview(playbook.id, phase, lang, composer.renderer.shown(rendered.template), rendered.whole_message())
    for checked in rendered.channels:
        preview.channels.append(ChannelPreview(checked.channel, channels.type_of(checked.channel),
                                               checked.rendered(), checked.measures))
    return preview
