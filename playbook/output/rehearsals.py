"""Rehearsals: failures in full, passing and skipped checks summed up, and each playbook's verdict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from playbook.output.console import console, inert

if TYPE_CHECKING:
    from playbook.commands.rehearsal import Rehearsal


def rehearsals(items: Sequence[tuple[Rehearsal, str]], written: Sequence[Path]) -> None:
    """Each rehearsal with its verdict (the sentence a manager reads), then the files written."""
    from rich.markup import escape
    from rich.text import Text

    out = console()
    for r, verdict in items:
        out.print(Text(f"Rehearsal of {r.playbook}", style="bold"))
        kinds: dict[str, list[int]] = {}
        for c in r.checks:
            counts = kinds.setdefault(c.group, [0, 0])
            if c.skipped:
                counts[1] += 1
            elif c.ok:
                counts[0] += 1
        for kind, (passed, skipped) in kinds.items():
            if passed or skipped:
                reasons = sorted({c.detail.removeprefix("skipped ").strip("()") for c in r.checks
                                  if c.group == kind and c.skipped})
                line = Text(f"✓ {kind}: {passed} passed", style="green") if passed else Text(f"- {kind}: ")
                if skipped:
                    line += Text(f"{', ' if passed else ''}{skipped} skipped ({'; '.join(reasons)})", style="dim")
                out.print(line)
        for c in r.checks:
            if not c.ok and not c.skipped:
                out.print(Text("✗ FAIL ", style="bold red") + Text(f"{c.group}: {c.name}: ", style="bold")
                          + Text(inert(c.detail)))
        out.print(Text(verdict, style="green" if r.ok else "bold red"))
    for path in written:
        out.print(f"Wrote {escape(str(path))}")
