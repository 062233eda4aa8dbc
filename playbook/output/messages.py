"""Messages against their channels' limits: the validation report and the preview of a phase."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from playbook.output.console import console, inert, one_line, parts, table

if TYPE_CHECKING:
    from rich.console import Console

    from playbook.commands.preview import Preview
    from playbook.commands.validate import MessageCheck, ValidationReport
    from playbook.publishers.base import Message
    from playbook.publishers.limits import Measure
    from playbook.rendering.messages import BlockMeasure


def validation(report: ValidationReport) -> None:
    from rich.text import Text

    out = console()
    if report.checks:
        out.print(Text("Messages against limits", style="bold"))
        # One table per playbook and phase, under its name: five columns fit 60, the ids stay whole.
        groups: dict[tuple[str, str], list[MessageCheck]] = {}
        for c in report.checks:
            groups.setdefault((c.playbook, c.phase), []).append(c)
        for (playbook, phase), checks in groups.items():
            parts(out, playbook, phase)
            drawn = table("lang", "channel", "block", "length")
            for c in checks:
                style = "" if c.measure.ok else "bold red"
                drawn.add_row(c.lang, c.channel, c.block, Text(str(c.measure), style=style))
            out.print(drawn)
    for warning in report.warnings:
        out.print(Text(f"warning: {inert(warning)}", style="yellow"))
    err = console(stderr=True)
    for problem in report.problems:
        err.print(Text(f"error: {one_line(str(problem))}", style="bold red"))
    if report.ok:
        out.print(Text(f"✓ {len(report.playbooks)} playbook(s) valid: {', '.join(report.playbooks)}",
                       style="green"))
    else:
        err.print(Text(f"✗ {len(report.problems)} problem(s)", style="bold red"))


def said(entries: Sequence[tuple[str, Message, Sequence[BlockMeasure]]], out: Console, *, html: bool) -> None:
    """Each distinct text once per language, with the channels that send it and its length against each limit.

    `entries` are (channel label, message, measures). Without `html`, an HTML block is named, not printed: it is
    the body again, in markup.
    """
    from rich.text import Text

    texts: dict[tuple[str, str, str], list[tuple[str, Measure | None]]] = {}
    for label, message, measures in entries:
        by_block = {m.block: m.measure for m in measures}
        for block, text in message.blocks.items():
            texts.setdefault((message.lang, block, text), []).append((label, by_block.get(block)))
    languages = list(dict.fromkeys(lang for lang, _, _ in texts))
    lang = None
    for (text_lang, block, text), receivers in sorted(texts.items(), key=lambda item: languages.index(item[0][0])):
        if text_lang != lang:
            lang = text_lang
            out.print(Text(f"── {lang} ──", style="bold"))
        names = ", ".join(f"{label} ({measure})" if measure else label for label, measure in receivers)
        too_long = any(measure is not None and not measure.ok for _, measure in receivers)
        out.print(Text(f"{block} → {names}", style="bold red" if too_long else "cyan"))
        if block == "html" and not html:
            out.print(Text(f"  (the body as HTML, {len(text):,} characters)", style="dim"))
            continue
        out.print(Text("\n".join(f"  {inert(line)}" if line else "" for line in text.split("\n"))))


def preview(p: Preview) -> None:
    from rich.text import Text

    out = console()
    kind = "holding update of phase" if p.holding else "phase"
    out.print(Text(f"{p.playbook} · {kind} {p.phase} · {p.lang} · {p.template}", style="bold"))
    if not p.channels:
        said([("(every block)", p.message, [])], out, html=True)
        return
    said([(f"{c.channel}", c.message, c.measures) for c in p.channels], out, html=True)
