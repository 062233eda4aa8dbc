"""The home as the terminal shows it: a new home, its playbooks, their FAQ and checklists, its channels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from playbook.output.console import console, inert, output_format, parts, write_json, write_markdown
from playbook.timeparse import format_duration

if TYPE_CHECKING:
    from playbook.commands.channels import ChannelInfo
    from playbook.home.model import Playbook


def initialised(written: list[Path], directory: Path) -> None:
    from rich.markup import escape

    from playbook.home.starter import next_steps

    out = console()
    out.print(f"Created a playbook home in [bold]{escape(str(directory))}[/] ({len(written)} files).")
    # Whole lines, never wrapped: each is a command to copy as it is.
    out.print("Next:")
    for command in next_steps(directory):
        out.print(f"  {escape(command)}", soft_wrap=True)


def playbook_list(playbooks: Sequence[Playbook]) -> None:
    from rich.text import Text

    out = console()
    if not playbooks:
        out.print("No playbooks in this home (playbooks/*.yaml).")
    # A block per playbook, not a table: the id is what the operator types next, and a table would cut it.
    for p in playbooks:
        parts(out, p.id, p.name[p.default_language])
        out.print(Text(f"  {', '.join(p.languages)} · window {format_duration(p.window)} · updates every "
                       f"{format_duration(p.update_every)}"))
        out.print(Text(f"  phases: {' → '.join(p.phases)}"))


def playbook_detail(p: Playbook) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    out = console()
    out.print(f"[bold]{escape(p.id)}[/]: " + " / ".join(escape(inert(p.name[lang])) for lang in p.languages))
    if p.description:
        out.print(Text(inert(p.description[p.default_language])))
    out.print(f"Languages: {', '.join(p.languages)} (default {p.default_language}) · time zone {p.timezone}")
    out.print(f"First notice due {format_duration(p.window)} after detection · updates every "
              f"{format_duration(p.update_every)} · rehearse every {format_duration(p.rehearse_every)}")
    phases = Table("phase", "channels", title="Phases (trigger publishes the first)")
    for name, phase in p.phases.items():
        phases.add_row(name, ", ".join(phase.channels))
    out.print(phases)
    if p.vars:
        out.print("Variables (--var name=value):")
        for name, spec in p.vars.items():
            line = Text(f"  {name}", style="bold")
            line += Text((" (required)" if spec.required else "")
                         + (f" = {inert(spec.default)}" if spec.default else "")
                         + (f": {inert(spec.description)}" if spec.description else ""))
            out.print(line)
    out.print(f"{len(p.faq)} FAQ entries · checklist for {', '.join(p.checklist) or 'no phase'}")


def faq(p: Playbook, lang: str, fmt: str | None = None) -> None:
    from rich.text import Text

    fmt = output_format(fmt)
    if fmt == "json":
        write_json({"playbook": p.id, "lang": lang, "faq": [
            {"question": e.question[lang], "answer": e.answer[lang]} for e in p.faq]})
        return
    if fmt == "md":
        sections = [f"# {p.name[lang]}"]
        sections += [f"## {n}. {e.question[lang]}\n\n{e.answer[lang].strip()}" for n, e in enumerate(p.faq, start=1)]
        write_markdown("\n\n".join(sections) + "\n")
        return
    out = console()
    out.print(Text(inert(p.name[lang]), style="bold"))
    for n, entry in enumerate(p.faq, start=1):
        out.print(Text(f"\n{n}. {inert(entry.question[lang])}", style="bold"))
        out.print(Text(inert(entry.answer[lang])))


def checklist(p: Playbook, phase: str | None, lang: str, fmt: str | None = None) -> None:
    from rich.text import Text

    fmt = output_format(fmt)
    phases = {name: p.checklist.get(name, {}).get(lang, []) for name in ([phase] if phase else list(p.phases))}
    if fmt == "json":
        write_json({"playbook": p.id, "lang": lang, "phases": phases})
        return
    if fmt == "md":
        sections = [f"## {name}\n\n" + ("\n".join(f"- [ ] {step}" for step in steps) or "(no manual steps)")
                    for name, steps in phases.items()]
        write_markdown("\n\n".join(sections) + "\n")
        return
    out = console()
    for name, steps in phases.items():
        out.print(Text(f"{name}", style="bold"))
        if not steps:
            out.print("  (no manual steps)")
        for step in steps:
            out.print(Text(inert(f"  [ ] {step}")))


def channel_list(listing: Sequence[ChannelInfo], as_json: bool) -> None:
    from rich.text import Text

    if as_json:
        write_json({"channels": [c.as_json() for c in listing]})
        return
    out = console()
    # One block per channel rather than a table: settings hold URLs and paths, which a table would cut.
    for c in listing:
        parts(out, c.name, c.type, ", ".join(c.languages))
        out.print(Text(f"  limits: {c.limits}"))
        if c.recipients is not None:
            out.print(Text(f"  {c.recipients:,} recipient(s)"))
        for key, value in c.settings.items():
            out.print(Text(f"  {key}: {inert(str(value))}"))
        if c.check is not None:
            out.print(Text(f"  check: {'✓' if c.check.ok else '✗'} {inert(c.check.detail)}",
                           style="green" if c.check.ok else "red"))
    # Once per type: the question an on-call marketer asks after a crash, before running `resume`.
    crashes = {c.type: c.unconfirmed for c in listing}
    if crashes:
        out.print("If publishing stops mid-send (a crash, kill -9), `playbook resume` finishes it:")
        for kind, meaning in crashes.items():
            out.print(Text(f"  {kind}: {meaning}"))
