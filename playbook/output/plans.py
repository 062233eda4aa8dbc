"""What is about to go out: the words, where, to how many and by when; and the question before publishing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING

from playbook.output.console import console, parts
from playbook.output.messages import said
from playbook.output.times import left, when, zone

if TYPE_CHECKING:
    from rich.console import Console

    from playbook.planning.plan import PostPlan
    from playbook.publishers.base import Message
    from playbook.rendering.messages import BlockMeasure


def plan_zone(plan: PostPlan | None) -> tzinfo:
    """The zone of the plan's playbook, in which its times are shown."""
    return zone(plan.context.timezone if plan is not None else None)


def confirm_plan(plan: PostPlan) -> bool:
    """The words about to go out, where, to how many and by when; then `Publish? [y/N]` (Enter is no)."""
    from rich.markup import escape

    out = console()
    plan_view(plan, out)
    # "[y/N]" is written escaped: as rich markup it would vanish.
    try:
        answer = out.input(f"[bold]{escape('Publish? [y/N]')}[/] ")
    except EOFError:  # Ctrl-D: no answer is a no
        out.print()
        return False
    return answer.strip().lower() in ("y", "yes", "o", "oui")


def plan_view(plan: PostPlan, out: Console) -> None:
    from rich.text import Text

    tz = plan_zone(plan)
    parts(out, plan.playbook, f"phase {plan.phase}", "DRILL" if plan.drill else "")
    out.print(f"Deadline: {when(plan.deadline, tz)} ({left(plan.deadline)})")
    if plan.supersedes:
        out.print(Text("Supersedes what earlier posts left unconfirmed here (it will not be sent after this "
                       "post):", style="yellow"))
        for line in plan.supersedes:
            out.print(Text(f"  {line}", style="yellow"))
    entries: list[tuple[str, Message, Sequence[BlockMeasure]]] = []
    for c in plan.channels:
        # In a drill, the sandbox says which live channel it rehearses.
        label = f"{c.name} (for {c.stands_in_for})" if c.stands_in_for else c.name
        if c.skipped:
            out.print(Text(f"Skipped: {label}: {c.skipped}", style="yellow"))
            continue
        if c.recipients_by_lang:
            counts = ", ".join(f"{lang} {n:,}" for lang, n in c.recipients_by_lang.items())
            total = sum(c.recipients_by_lang.values())
            out.print(f"{label} ({c.type}): {total:,} recipient(s): {counts}")
        sample = " (sample)" if c.publisher.per_recipient else ""
        entries += [(label + sample, c.messages[lang], c.measures.get(lang, [])) for lang in c.languages
                    if lang in c.messages]
    said(entries, out, html=False)
