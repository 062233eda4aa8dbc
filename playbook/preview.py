"""`playbook render`: what one phase would say, in one language, on each of its channels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from playbook.channels import load_channels
from playbook.errors import PlaybookError, did_you_mean, one_of
from playbook.home import Home
from playbook.messages import BlockMeasure, Composer
from playbook.templates import Message
from playbook.variables import resolve


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
    variables = resolve(playbook, given, samples=True)
    composer = Composer(home, playbook)
    context = composer.preview_context(phase, drill=drill)
    preview = Preview(playbook.id, phase, lang, composer.renderer.shown(composer.template(phase, lang)),
                      composer.message(phase, lang, variables, context))
    names = playbook.phases[phase].channels
    if channel is not None and channel not in names:
        raise PlaybookError(f"phase '{phase}' does not publish to channel '{channel}'"
                            f"{did_you_mean(channel, names)}; its channels: {one_of(names)}")
    channels = load_channels(home)
    for name in [channel] if channel else names:
        channels.require(name, used_by=f"playbook '{playbook.id}'")
        publisher = channels.publisher(name, playbook.languages, offline=True)
        if lang not in publisher.languages():
            continue
        composer.check_blocks(phase, lang, publisher)
        # Rendered again for the channel: it shows only the blocks that channel sends.
        message = composer.message(phase, lang, variables, context, publisher)
        preview.channels.append(ChannelPreview(name, channels.type_of(name), message,
                                               composer.measure(message, publisher)))
    return preview
