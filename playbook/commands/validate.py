"""`playbook validate`: every playbook, template, channel and message of a home, checked offline."""

from __future__ import annotations

import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from playbook.errors import ChannelError, ConfigError, PlaybookError, TemplateError, did_you_mean, one_of
from playbook.home.channel_config import Channels, load_channels
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.home.yamlfile import YamlDoc
from playbook.publishers.base import Publisher
from playbook.publishers.limits import Measure
from playbook.rendering.messages import Composer, phase_messages
from playbook.rendering.templates import RenderContext
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
        _validate_playbook(home, playbook, doc, channels, report)
    exposed = _exposed_dotenv(home)
    if exposed:
        report.warnings.append(exposed)
    report.warnings.extend(_monitors_unset(home, wanted))
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


def _monitors_unset(home: Home, ids: Sequence[str]) -> Iterator[str]:
    """A warning per monitor whose ${NAME} settings are not set: said like a channel's, since a probe needs them."""
    from playbook.monitoring.settings import env_references

    for playbook_id in ids:
        try:
            playbook = home.load_playbook(playbook_id)
        except PlaybookError:
            continue
        for monitor in playbook.monitors:
            missing = [var for var in env_references(monitor) if not home.env.get(var)]
            if missing:
                yield (f"playbook '{playbook.id}' monitor '{monitor.name}': "
                       f"{', '.join('$' + v for v in missing)} not set; needed to probe it (watch, rehearse)")


def _channels_used(home: Home, ids: Sequence[str]) -> set[str]:
    used: set[str] = set()
    for playbook_id in ids:
        try:
            playbook = home.load_playbook(playbook_id)
        except PlaybookError:
            continue
        used.update(playbook.channel_names())
        if playbook.reminders is not None:
            used.update(playbook.reminders.channels)
        used.update(playbook.watch.alert)
    return used


def _validate_playbook(home: Home, playbook: Playbook, doc: YamlDoc, channels: Channels | None,
                       report: ValidationReport) -> None:
    composer = Composer(home, playbook)
    try:
        variables = resolve(playbook, {}, samples=True, placeholders=True)
    except PlaybookError as exc:
        report.problems.append(exc)
        return
    publishers: dict[str, Publisher[Any]] = {}
    if channels is not None:
        report.problems.extend(_undefined_channels(playbook, doc, channels))
        reminded = playbook.reminders.channels if playbook.reminders is not None else []
        for name in dict.fromkeys([*playbook.channel_names(), *reminded, *playbook.watch.alert]):
            if name not in channels.raw:
                continue
            try:
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
        _check_messages(composer, phase_name, targets, variables, composer.preview_context(phase_name), report)
    if playbook.holding is None:
        return
    # The worker repeats any phase but the last, on the holding channels that phase publishes to.
    repeated = list(playbook.phases.items())[:-1]
    for name in playbook.holding.channels:
        if not any(name in phase.channels for _, phase in repeated):
            report.warnings.append(f"playbook '{playbook.id}': holding channel '{name}' gets no holding update: no "
                                   f"phase before '{playbook.last_phase}' publishes to it")
        elif name in publishers and publishers[name].per_recipient:
            report.warnings.append(f"playbook '{playbook.id}': holding channel '{name}' sends to a list: each "
                                   "holding update is sent again to every recipient on it")
    for phase_name, phase in repeated:
        targets = {name: publishers[name] for name in playbook.holding.channels
                   if name in phase.channels and name in publishers}
        _check_messages(composer, phase_name, targets, variables,
                        composer.preview_context(phase_name, holding=True), report, holding=True)


def _undefined_channels(playbook: Playbook, doc: YamlDoc, channels: Channels) -> Iterator[ConfigError]:
    """Each channel the playbook names that channels.yaml does not define, once, where it is first named."""
    named: list[tuple[str, tuple[str | int, ...], list[str]]] = [
        (f"phase '{phase_name}'", ("phases", phase_name, "channels"), phase.channels)
        for phase_name, phase in playbook.phases.items()
    ]
    for key, listed in (("reminders", playbook.reminders), ("holding", playbook.holding)):
        if listed is not None:
            named.append((f"{key}.channels", (key, "channels"), listed.channels))
    named.append(("watch.alert", ("watch", "alert"), playbook.watch.alert))
    reported: set[str] = set()
    for where, loc, names in named:
        for i, name in enumerate(names):
            if name in channels.raw or name in reported:
                continue
            reported.add(name)
            yield doc.error(f"{where} names channel '{name}', which channels.yaml does not define"
                            f"{did_you_mean(name, channels.raw)}; defined: {one_of(channels.raw)}", (*loc, i))


def _check_messages(composer: Composer, phase_name: str, targets: Mapping[str, Publisher[Any]],
                    variables: Mapping[str, Any], context: RenderContext, report: ValidationReport,
                    holding: bool = False) -> None:
    """One phase rendered on its channels in every language, each block measured, as an update or a holding one."""
    playbook = composer.playbook
    label = f"{phase_name} (holding)" if holding else phase_name
    for rendered in phase_messages(composer, phase_name, playbook.languages, targets, variables, context,
                                   whole=True):
        shown = composer.renderer.shown(rendered.template)

        def failed(problem: PlaybookError, channels: list[str], lang: str = rendered.lang) -> None:
            if holding:
                # A mistake the phase's own update already showed is one line, not two.
                seen = str(problem) in {str(p) for p in report.problems}
                problem = type(problem)(f"{problem.message} (in a holding update)", path=problem.path,
                                        line=problem.line, column=problem.column)
                if not seen:
                    report.problems.append(problem)
            else:
                report.problems.append(problem)
            for channel in channels:
                report.renders[(playbook.id, label, lang, channel)] = str(problem)

        if rendered.problem is not None:
            missing = not composer.renderer.exists(rendered.template)
            failed(TemplateError(f"missing template for phase '{phase_name}' in '{rendered.lang}'", path=shown)
                   if missing else rendered.problem, [c.channel for c in rendered.channels])
            continue
        for checked in rendered.channels:
            if checked.problem is not None:
                failed(checked.problem, [checked.channel])
                continue
            report.renders[(playbook.id, label, rendered.lang, checked.channel)] = None
            for measured in checked.measures:
                report.checks.append(MessageCheck(playbook.id, label, rendered.lang, checked.channel,
                                                  measured.block, measured.measure))
                if not measured.measure.ok:
                    failed(TemplateError(
                        f"block '{measured.block}' "
                        f"{'is too long for' if measured.measure.too_long else 'cannot go out on'} "
                        f"channel '{checked.channel}': {measured.measure}",
                        path=shown,
                    ), [checked.channel])
