"""`playbook validate`: every playbook, template, channel and message of a home, checked offline."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from playbook.errors import ChannelError, PlaybookError, TemplateError
from playbook.home.channel_config import Channels, load_channels
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.publishers.base import Publisher
from playbook.publishers.limits import Measure
from playbook.rendering.messages import Composer, phase_messages
from playbook.rendering.variables import missing_message, resolve, without_value


@dataclass(frozen=True)
class MessageCheck:
    """One block of one phase x language x channel, measured against that channel's limit."""

    playbook: str
    phase: str
    lang: str
    channel: str
    block: str
    measure: Measure


@dataclass
class ValidationReport:
    playbooks: list[str] = field(default_factory=list)
    problems: list[PlaybookError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks: list[MessageCheck] = field(default_factory=list)
    # Every (playbook, phase, lang, channel) rendered: None when it renders within limits, else the problem.
    renders: dict[tuple[str, str, str, str], str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_home(home: Home, ids: Sequence[str] = ()) -> ValidationReport:
    report = ValidationReport()
    home.require()
    wanted = list(ids) or home.playbook_ids()
    channels: Channels | None = None
    try:
        channels = load_channels(home)
    except PlaybookError as exc:
        report.problems.append(exc)
    for playbook_id in wanted:
        report.playbooks.append(playbook_id)
        try:
            playbook, doc = home.load_playbook_doc(playbook_id)
        except PlaybookError as exc:
            report.problems.append(exc)
            continue
        report.problems.extend(doc.error(missing_message(playbook, name), ("vars", name))
                               for name in without_value(playbook))
        _validate_playbook(home, playbook, channels, report)
    exposed = _exposed_dotenv(home)
    if exposed:
        report.warnings.append(exposed)
    if channels is not None:
        used = _channels_used(home, wanted)
        for name in channels.names():
            missing = channels.missing_env(name)
            if missing and name in used:
                report.warnings.append(
                    f"channel '{name}': {', '.join('$' + v for v in missing)} not set; "
                    "needed to publish for real (a dry-run works without)"
                )
    return report


def _exposed_dotenv(home: Home) -> str | None:
    """A warning when the home's .env, which holds the channels' secrets, is readable by other users."""
    dotenv = home.root / ".env"
    try:
        mode = dotenv.stat().st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    return (f"{home.shown(dotenv)} can be read by other users (mode {stat.S_IMODE(mode):04o}) and holds the "
            f"channels' secrets: chmod 600 {dotenv}")


def _channels_used(home: Home, ids: Sequence[str]) -> set[str]:
    used: set[str] = set()
    for playbook_id in ids:
        try:
            used.update(home.load_playbook(playbook_id).channel_names())
        except PlaybookError:
            continue
    return used


def _validate_playbook(home: Home, playbook: Playbook, channels: Channels | None,
                       report: ValidationReport) -> None:
    composer = Composer(home, playbook)
    try:
        variables = resolve(playbook, {}, samples=True, placeholders=True)
    except PlaybookError as exc:
        report.problems.append(exc)
        return
    publishers: dict[str, Publisher[Any]] = {}
    if channels is not None:
        for name in playbook.channel_names():
            try:
                channels.require(name, used_by=f"playbook '{playbook.id}'")
                publisher = channels.publisher(name, playbook.languages, offline=True)
            except PlaybookError as exc:
                report.problems.append(exc)
                continue
            publishers[name] = publisher
            report.problems.extend(ChannelError(f"channel '{name}': {p}") for p in publisher.validate())
            for warning in (f"channel '{name}': {w}" for w in publisher.warnings()):
                if warning not in report.warnings:
                    report.warnings.append(warning)
    for phase_name, phase in playbook.phases.items():
        targets = {name: publishers[name] for name in phase.channels if name in publishers}
        for rendered in phase_messages(composer, phase_name, playbook.languages, targets, variables,
                                       composer.preview_context(phase_name), whole=True):
            shown = composer.renderer.shown(rendered.template)

            def failed(problem: PlaybookError, channels: list[str], lang: str = rendered.lang,
                       phase: str = phase_name) -> None:
                report.problems.append(problem)
                for channel in channels:
                    report.renders[(playbook.id, phase, lang, channel)] = str(problem)

            if rendered.problem is not None:
                missing = not composer.renderer.exists(rendered.template)
                failed(TemplateError(f"missing template for phase '{phase_name}' in '{rendered.lang}'", path=shown)
                       if missing else rendered.problem, [c.channel for c in rendered.channels])
                continue
            for checked in rendered.channels:
                if checked.problem is not None:
                    failed(checked.problem, [checked.channel])
                    continue
                report.renders[(playbook.id, phase_name, rendered.lang, checked.channel)] = None
                for measured in checked.measures:
                    report.checks.append(MessageCheck(playbook.id, phase_name, rendered.lang, checked.channel,
                                                      measured.block, measured.measure))
                    if not measured.measure.ok:
                        failed(TemplateError(
                            f"block '{measured.block}' "
                            f"{'is too long for' if measured.measure.too_long else 'cannot go out on'} "
                            f"channel '{checked.channel}': {measured.measure}",
                            path=shown,
                        ), [checked.channel])
