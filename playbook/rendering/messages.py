"""Turning a playbook phase into the message each channel would send, and measuring it against limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from playbook.errors import PlaybookError, TemplateError
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.publishers.base import Message, Publisher, Recipient
from playbook.publishers.limits import Measure
from playbook.rendering.templates import BLOCKS, RenderContext, Renderer, template_name

# A drill's messages must not be mistaken for real ones, in any language the playbook speaks.
DRILL_MARKERS = {"fr": "[EXERCICE]", "en": "[DRILL]", "de": "[ÜBUNG]", "es": "[SIMULACRO]", "it": "[ESERCITAZIONE]"}
DRILL_BLOCKS = ("title", "short", "body")

SAMPLE_RECIPIENT = {"email": "camille.martin@example.com", "name": "Camille Martin", "phone": "+33612345678"}


def drill_marker(lang: str) -> str:
    return DRILL_MARKERS.get(lang.split("-")[0], DRILL_MARKERS["en"])


@dataclass(frozen=True)
class BlockMeasure:
    block: str
    measure: Measure


@dataclass(frozen=True)
class ChannelMessage:
    """A phase's message on one channel in one language: rendered and measured, or the problem that stopped it."""

    channel: str
    lang: str
    outcome: Message | PlaybookError
    measures: list[BlockMeasure] = field(default_factory=list)

    @property
    def problem(self) -> PlaybookError | None:
        return self.outcome if isinstance(self.outcome, PlaybookError) else None

    def rendered(self) -> Message:
        """The message; raises the problem instead when there is one."""
        if isinstance(self.outcome, PlaybookError):
            raise self.outcome
        return self.outcome


@dataclass(frozen=True)
class LanguageMessages:
    """A phase in one language: the template with every block (when asked for), then each channel's message."""

    lang: str
    template: str
    channels: list[ChannelMessage]
    whole: Message | None = None
    # The template itself failed (missing, a syntax error...): every channel of this language has it too.
    problem: PlaybookError | None = None

    def whole_message(self) -> Message:
        """The template with every block; raises its problem instead when there is one."""
        if self.problem is not None:
            raise self.problem
        if self.whole is None:
            raise ValueError("the whole template is rendered only when phase_messages is given whole=True")
        return self.whole


class Composer:
    """Renders messages for one playbook of one home; templates are compiled once and reused."""

    def __init__(self, home: Home, playbook: Playbook, renderer: Renderer | None = None) -> None:
        self.home = home
        self.playbook = playbook
        self.renderer = renderer or Renderer(home.templates_dir, display_root=home.root)

    def template(self, phase: str, lang: str) -> str:
        return template_name(self.playbook.id, phase, lang)

    def context(self, incident_id: str, detected_at: datetime, phase: str,
                next_update_at: datetime | None, drill: bool = False,
                issued_at: datetime | None = None, holding: bool = False) -> RenderContext:
        """What templates see of the incident; `issued_at` of the last phase is when it was resolved."""
        resolved_at = (issued_at or datetime.now(UTC)) if phase == self.playbook.last_phase else None
        return RenderContext(
            playbook_id=self.playbook.id,
            playbook_name=self.playbook.name,
            timezone=self.playbook.timezone,
            incident_id=incident_id,
            detected_at=detected_at,
            phase=phase,
            next_update_at=next_update_at,
            resolved_at=resolved_at,
            drill=drill,
            holding=holding,
        )

    def check_blocks(self, phase: str, lang: str, publisher: Publisher[Any]) -> None:
        """A template lacking a block that a channel of this phase needs is an error before anything is sent."""
        name = self.template(phase, lang)
        present = self.renderer.blocks_of(name)
        missing = [b for b in publisher.blocks if b not in present]
        if missing:
            raise TemplateError(
                f"no block '{missing[0]}', which channel '{publisher.name}' (type {publisher.config.type}) needs;"
                f" the template has: {', '.join(sorted(present)) or 'no blocks'}",
                path=self.renderer.shown(name),
            )

    def message(self, phase: str, lang: str, variables: Mapping[str, Any], context: RenderContext,
                publisher: Publisher[Any] | None = None, recipient: Recipient | None = None) -> Message:
        fields: Mapping[str, str] | None = None
        if recipient is not None:
            fields = recipient.fields
        elif publisher is not None and publisher.per_recipient:
            fields = SAMPLE_RECIPIENT
        message = self.renderer.render(self.template(phase, lang), lang, variables, context,
                                       recipient=fields, wanted=_wanted(publisher))
        return mark_drill(message) if context.drill else message

    def recipient_messages(self, phase: str, lang: str, variables: Mapping[str, Any], context: RenderContext,
                           publisher: Publisher[Any]) -> Callable[[Recipient], Message]:
        """What `message` gives each recipient of a per-recipient channel, the template prepared once for all."""
        prepared = self.renderer.prepare(self.template(phase, lang), lang, variables, context,
                                         wanted=_wanted(publisher))

        def message(recipient: Recipient) -> Message:
            rendered = prepared.render(recipient.fields)
            return mark_drill(rendered) if context.drill else rendered

        return message

    def preview_context(self, phase: str, drill: bool = False, holding: bool = False) -> RenderContext:
        """A plausible context for previews: detected a little while before the phase, as in a real outage."""
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        detected = now - self.playbook.update_every * list(self.playbook.phases).index(phase)
        next_update = None if phase == self.playbook.last_phase else now + self.playbook.update_every
        return self.context(f"{self.playbook.id}-preview", detected, phase, next_update, drill=drill, issued_at=now,
                            holding=holding)

    @staticmethod
    def measure(message: Message, publisher: Publisher[Any]) -> list[BlockMeasure]:
        return [
            BlockMeasure(block, limit.measure(message.block(block)))
            for block, limit in publisher.limits().items()
            if block in message.blocks
        ]


def phase_messages(composer: Composer, phase: str, languages: Sequence[str], publishers: Mapping[str, Publisher[Any]],
                   variables: Mapping[str, Any], context: RenderContext, *, whole: bool = False,
                   first: Mapping[str, Mapping[str, Recipient]] | None = None) -> Iterator[LanguageMessages]:
    """Each language of a phase on each channel that speaks it: blocks checked, rendered, measured; one at a time.

    `whole` first renders the template with every block, as the `render` command shows it; if that fails, the
    language's channels are not rendered and each carries the problem. A per-recipient channel's message is
    rendered for the first recipient of its language in `first` (channel -> language -> recipient), else for
    a sample one.
    """
    for lang in languages:
        targets = [name for name, publisher in publishers.items() if lang in publisher.languages()]
        template = composer.template(phase, lang)
        message: Message | None = None
        if whole:
            try:
                message = composer.message(phase, lang, variables, context)
            except PlaybookError as exc:
                yield LanguageMessages(lang, template, [ChannelMessage(name, lang, exc) for name in targets],
                                       problem=exc)
                continue
        yield LanguageMessages(lang, template, [
            _channel_message(composer, phase, lang, name, publishers[name], variables, context,
                             (first or {}).get(name, {}).get(lang))
            for name in targets
        ], whole=message)


def _channel_message(composer: Composer, phase: str, lang: str, channel: str, publisher: Publisher[Any],
                     variables: Mapping[str, Any], context: RenderContext,
                     recipient: Recipient | None) -> ChannelMessage:
    try:
        composer.check_blocks(phase, lang, publisher)
        message = composer.message(phase, lang, variables, context, publisher, recipient)
    except PlaybookError as exc:
        return ChannelMessage(channel, lang, exc)
    return ChannelMessage(channel, lang, message, composer.measure(message, publisher))


def _wanted(publisher: Publisher[Any] | None) -> tuple[str, ...]:
    """The blocks a channel sends, in order, each once; every block when rendering for no channel."""
    return BLOCKS if publisher is None else tuple(dict.fromkeys((*publisher.blocks, *publisher.optional_blocks)))


def mark_drill(message: Message) -> Message:
    marker = drill_marker(message.lang)
    blocks = dict(message.blocks)
    for block in DRILL_BLOCKS:
        if block in blocks and not blocks[block].startswith(marker):
            blocks[block] = f"{marker} {blocks[block]}"
    if "html" in blocks:
        blocks["html"] = f"<p><strong>{marker}</strong></p>\n{blocks['html']}"
    return Message(lang=message.lang, blocks=blocks, template=message.template)
