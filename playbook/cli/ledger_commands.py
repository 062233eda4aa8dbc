"""`playbook ledger`: the record itself: which store is in use, an export of it, a copy into another store."""

# No `from __future__ import annotations` in the CLI: typer would eval() every annotation string of every
# command at each start, which doubles the time `playbook --help` spends building the commands.
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from playbook.cli.app import load_home
from playbook.cli.options import Json
from playbook.errors import PlaybookError

ledger_app = typer.Typer(name="ledger", no_args_is_help=True, rich_markup_mode=None,
                         help="The ledger itself: which store is in use, export it, copy it to another store.")



class ExportFormat(StrEnum):
    """What `export` writes; one format today, named so that scripts keep working when another comes."""

    JSONL = "jsonl"


@ledger_app.command()
def info(json_: Json = False) -> None:
    """Say which store holds the ledger (a file, a PostgreSQL database), its schema version, size and counts."""
    from playbook.commands.ledger import describe
    from playbook.output.ledger import store_info

    store_info(describe(load_home()), as_json=json_)


@ledger_app.command()
def init(json_: Json = False) -> None:
    """Create the ledger now (its file, or its tables in a PostgreSQL database) rather than at the first trigger."""
    from playbook.commands.ledger import create
    from playbook.output.ledger import store_info

    store_info(create(load_home()), as_json=json_)


@ledger_app.command()
def export(
    format_: Annotated[ExportFormat, typer.Option("--format", help="jsonl: one JSON object a line, each with "
                                                                   "its 'record' kind (incident, post, delivery, "
                                                                   "rehearsal).")] = ExportFormat.JSONL,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="Write to FILE, readable by its owner only (default: "
                                                     "standard output).")] = None,
) -> None:
    """Write every incident, post, delivery and rehearsal, for archiving or analysis (secrets were never stored)."""
    from playbook.commands.ledger import export as export_ledger
    from playbook.output.ledger import exported

    if output is None:
        exported(export_ledger(load_home(), sys.stdout.write))
        return
    # Customers' addresses are in it: the file is private from its first byte. It is written aside and renamed
    # once complete, so that a failed export (no ledger, a database lost midway) never leaves a short history
    # under the name asked for, and a file already there takes the private mode with its new content.
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise PlaybookError(f"--output {output}: cannot write there: {exc.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            counts = export_ledger(load_home(), file.write)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    exported(counts)


@ledger_app.command()
def migrate(
    to: Annotated[str, typer.Option("--to", metavar="URL|FILE", help="The new ledger: a postgresql:// URL or a "
                                                                     "file; it must hold no records yet.")],
) -> None:
    """Copy the whole ledger into another store (SQLite file to PostgreSQL, or back), in one transaction."""
    from playbook.commands.ledger import migrate as migrate_ledger
    from playbook.output.ledger import migrated

    migrated(*migrate_ledger(load_home(), to))
