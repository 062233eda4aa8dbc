"""The console every screen prints to: secrets masked, outside text made inert, errors on one line."""

from __future__ import annotations

import json
import re
import sys
import traceback as tb
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, cast

from playbook import secrets

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class _Masked:
    """A stream that masks every known secret in what is written to it."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(secrets.redact(text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    # Looked up at each call so that tests capturing sys.stdout see the output.
    stream = sys.stderr if stderr else sys.stdout
    # Lines are never wrapped by us (the terminal folds them on screen): an id, a URL, a command or an error
    # stays whole, to be copied or grepped. Tables still fit the width; their links are printed below them.
    return Console(file=cast(IO[str], _Masked(stream)), highlight=False, soft_wrap=True)


def write_json(data: object) -> None:
    """`data` as indented JSON on stdout; what JSON cannot hold (a datetime) as its text."""
    sys.stdout.write(secrets.redact(json.dumps(data, ensure_ascii=False, indent=2, default=str)) + "\n")


def write_markdown(text: str) -> None:
    """Markdown on stdout as it is, for a file or a pipe: secrets masked, control characters inert."""
    sys.stdout.write(secrets.redact(inert(text)))


def output_format(chosen: str | None) -> str:
    """md when the output goes to a file or a pipe (pasted elsewhere), text on a terminal."""
    return chosen or ("text" if sys.stdout.isatty() else "md")


def parts(out: Console, *texts: str, style: str = "bold", sep: str = " · ") -> None:
    """Parts joined by `sep`, a line broken only between two parts: an id or a time is never cut in two."""
    from rich.text import Text

    lines: list[str] = []
    for part in (p for p in texts if p):
        if lines and len(lines[-1]) + len(sep) + len(part) <= out.width:
            lines[-1] += sep + part
        else:
            lines.append(part)
    for line in lines:
        out.print(Text(inert(line), style=style))


def table(*columns: str) -> Table:
    """A compact table that fits 60 columns; whatever must stay whole (links, errors) goes below it."""
    from rich import box
    from rich.table import Table

    drawn = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    for name in columns:
        # Words that wrap read as two (a time under its zone, "already-" over "sent"): only free text may.
        drawn.add_column(name, no_wrap=name not in ("length", "detail"))
    return drawn


def details(lines: Sequence[tuple[str, str, str]], out: Console) -> None:
    """Links and errors below a table, each on one line of its own: never cut, so they can be copied."""
    from rich.text import Text

    for channel, lang, detail in lines:
        out.print(Text(f"{channel} {lang}: ", style="bold") + Text(inert(detail)))


def error(message: str) -> None:
    from rich.text import Text

    # One line whatever the message quotes (a name with a line break in it), so it can be read and grepped whole.
    console(stderr=True).print(Text(f"error: {one_line(message)}", style="bold red"))


# Controls but tab and line feed (ESC would start a sequence that retitles or clears the terminal, CR would
# overwrite the line), and what no terminal can print: lone surrogates, U+FFFE and U+FFFF.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def inert(text: str) -> str:
    """Text from outside (a file, a CSV cell, a template, a provider): control characters shown, never obeyed."""
    return _CONTROL.sub(lambda found: ascii(found.group())[1:-1], text)


def one_line(text: str) -> str:
    """An error as one line, however many the text it quotes has."""
    return inert(text).replace("\n", "\\n")


def traceback(exc: BaseException) -> None:
    sys.stderr.write(secrets.redact(inert("".join(tb.format_exception(exc)))))
