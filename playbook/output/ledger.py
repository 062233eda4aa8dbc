"""The ledger's own commands as the terminal shows them: its description, an export's and a copy's counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from playbook.output.console import console, inert, write_json

if TYPE_CHECKING:
    from playbook.ledger.archive import StoreInfo

PLURALS = {"incident": "incidents", "post": "posts", "delivery": "deliveries", "rehearsal": "rehearsals",
           "duty": "duties", "monitor_change": "monitor changes"}


def store_info(described: StoreInfo, as_json: bool) -> None:
    from rich.text import Text

    if as_json:
        write_json(described.as_json())
        return
    out = console()
    for label, value in (("store", described.store + (f" ({described.server})" if described.server else "")),
                         ("where", described.where), ("schema", f"version {described.schema}"),
                         ("size", size(described.size)), ("records", counted(described.counts))):
        # One line each, never cut: the location is copied as it is.
        out.print(Text(f"{label}: ", style="bold") + Text(inert(value)), soft_wrap=True)


def exported(counts: Mapping[str, int]) -> None:
    """An export's summary, on stderr: stdout may be the export itself."""
    console(stderr=True).print(f"Exported {counted(counts) or 'nothing: the ledger is empty'}.", markup=False)


def migrated(counts: Mapping[str, int], where: str) -> None:
    out = console()
    out.print(f"Copied {counted(counts) or 'nothing (the ledger was empty)'} into {inert(where)}.", markup=False,
              soft_wrap=True)
    if "://" in where:
        out.print(f"Point every machine at it: --state '{inert(where)}' or PLAYBOOK_STATE (the password in "
                  "${NAME}, PGPASSWORD or ~/.pgpass rather than in the URL).", soft_wrap=True, markup=False)
    else:
        # Back to a file: one machine's ledger again.
        out.print(f"Use it with --state '{inert(where)}' or PLAYBOOK_STATE.", soft_wrap=True, markup=False)


def counted(counts: Mapping[str, int]) -> str:
    """'4 incidents, 1 post, 0 deliveries...'"""
    return ", ".join(f"{n} {kind.replace('_', ' ') if n == 1 else PLURALS.get(kind, kind)}"
                     for kind, n in counts.items())


def size(count: int) -> str:
    """A size in bytes as a person reads it: 812 bytes, 1.5 MB."""
    if count < 1024:
        return f"{count:,} bytes"
    scaled = float(count)
    for unit in ("kB", "MB", "GB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GB":
            break
    return f"{scaled:,.1f} {unit}"
