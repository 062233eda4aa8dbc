"""Recipient lists: a CSV file of the home, read row by row, for the channels that write to each person.

The first row names the columns. One column holds the address (`email` for email, `phone` for SMS),
`language` (or `lang`) picks the message's language, and every column is available to templates as
`recipient.<column>` (names lower-cased). Commas or semicolons, CRLF or LF, with or without a BOM.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from playbook.errors import PlaybookError
from playbook.publishers.base import Recipient

LANGUAGE_COLUMNS = ("language", "lang")
# Beyond this many, warnings are summed up: a list exported with the wrong column would flood the screen.
SHOWN_WARNINGS = 20
_CHUNK = 1 << 20

# Returns the address in the form to send to, or raises ValueError saying what is wrong with it.
AddressCheck = Callable[[str], str]

# E.164: a + and at most 15 digits, the first one never 0 (it starts the country code).
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_PHONE_PUNCTUATION = re.compile(r"[\s.()\-]")


def phone_number(value: str) -> str:
    """`value` as an E.164 number (+33612345678), spaces and dashes dropped; ValueError saying what is wrong."""
    # "+33 (0)6 ..." writes the national trunk 0, which an international number leaves out.
    compact = _PHONE_PUNCTUATION.sub("", value.replace("(0)", ""))
    if not compact:
        raise ValueError("no number")
    # 00 is the international prefix of most of Europe: 0033... is +33...
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _E164.fullmatch(compact):
        raise ValueError("write it with + and the country code, e.g. +33612345678")
    return compact


@dataclass(frozen=True)
class _Row:
    line: int
    fields: dict[str, str]


class RecipientList:
    """One CSV list of recipients, streamed from disk: never all in memory at once."""

    def __init__(self, path: Path, shown: str, column: str, check: AddressCheck, kind: str) -> None:
        self.path = path
        self.shown = shown
        self.column = column
        self.check = check
        self.kind = kind

    # -- offline checks ----------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """What makes the list unusable (missing, not UTF-8, no address column); cheap enough before a send."""
        if not self.path.is_file():
            return [f"recipient list {self.shown} does not exist"]
        bad_line = self._undecodable_line()
        if bad_line is not None:
            return [f"{self.shown}:{bad_line}: not UTF-8 text; save the list as UTF-8 (CSV UTF-8)"]
        header = self._header()
        if header is None:
            return [f"recipient list {self.shown} is empty: its first row must name the columns"]
        if self.column not in header:
            named = ", ".join(h for h in header if h) or "none"
            return [f"{self.shown}:1: no '{self.column}' column (columns: {named})"]
        return []

    def warnings(self) -> list[str]:
        """Rows that will not be sent: bad or missing addresses, and repeats of an earlier row."""
        if self.problems():
            return []
        found: list[str] = []
        first_line: dict[str, int] = {}
        for row in self._rows():
            value = row.fields.get(self.column, "")
            try:
                address = self.check(value)
            except ValueError as exc:
                found.append(f"{self.shown}:{row.line}: {_quoted(value)} is not {self.kind} ({exc}); "
                             "this row is skipped")
                continue
            seen = first_line.setdefault(address.lower(), row.line)
            if seen != row.line:
                found.append(f"{self.shown}:{row.line}: {address} repeats line {seen}; it is sent once")
        if len(found) > SHOWN_WARNINGS:
            rest = len(found) - SHOWN_WARNINGS
            found = [*found[:SHOWN_WARNINGS], f"{self.shown}: and {rest:,} more rows like these"]
        if not first_line:
            found.insert(0, f"{self.shown} has no recipient to send to")
        return found

    def count(self) -> int:
        """Rows with an address, valid or not: a quick figure for plans and listings."""
        if self.problems():
            return 0
        return sum(1 for row in self._rows() if row.fields.get(self.column))

    # -- sending -----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Recipient]:
        """Each valid address once, in file order; bad rows and repeats are skipped (`warnings` lists them)."""
        seen: set[str] = set()
        for row in self._rows():
            try:
                address = self.check(row.fields.get(self.column, ""))
            except ValueError:
                continue
            key = address.lower()
            if key in seen:
                continue
            seen.add(key)
            lang = next((row.fields[c] for c in LANGUAGE_COLUMNS if row.fields.get(c)), None)
            yield Recipient(address=address, lang=lang, fields=row.fields, line=row.line)

    # -- reading -----------------------------------------------------------------------------------
    def _header(self) -> list[str] | None:
        with self._open() as handle:
            reader = csv.reader(handle, delimiter=_delimiter(handle))
            for cells in _cells(reader, self.shown):
                if any(c.strip() for c in cells):
                    return [_column_name(c) for c in cells]
        return None

    def _rows(self) -> Iterator[_Row]:
        with self._open() as handle:
            reader = csv.reader(handle, delimiter=_delimiter(handle))
            header: list[str] | None = None
            previous_end = 0
            for cells in _cells(reader, self.shown):
                start, previous_end = previous_end + 1, reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if header is None:
                    header = [_column_name(c) for c in cells]
                    continue
                fields = {name: value.strip() for name, value in zip(header, cells, strict=False) if name}
                yield _Row(start, fields)

    def _open(self) -> TextIO:
        # newline="" lets the csv module read quoted line breaks and CRLF; bytes that are not UTF-8 (which
        # problems() reports) become U+FFFD rather than stopping a send halfway through the list.
        return self.path.open(encoding="utf-8-sig", errors="replace", newline="")

    def _undecodable_line(self) -> int | None:
        """The line of the first byte that is not UTF-8, read in chunks (a list may be large)."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        lines = 1
        with self.path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return lines + chunk.count(b"\n", 0, exc.start)
                lines += chunk.count(b"\n")
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                return lines
        return None


def _cells(reader: Any, shown: str) -> Iterator[list[str]]:
    """The rows of a csv reader; a row it cannot read (a cell over 131,072 characters) is an error naming its line."""
    start = 1
    try:
        for cells in reader:
            yield cells
            start = reader.line_num + 1
    except csv.Error as exc:
        # Usually a quote left open, which swallows the rest of the file into one cell.
        raise PlaybookError(f"{shown}:{start}: cannot read this row ({exc}); is a quote left open?") from None


def _delimiter(handle: TextIO) -> str:
    """Semicolon, tab or comma, whichever the header line has most of; spreadsheets in French use ';'."""
    first = handle.readline()
    handle.seek(0)
    counts = {d: first.count(d) for d in (";", "\t", ",")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _column_name(cell: str) -> str:
    return cell.strip().lower()


def _quoted(value: str) -> str:
    return f"'{value}'" if value else "an empty cell"
