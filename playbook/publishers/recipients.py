"""Recipient lists: a CSV file of the home, read row by row, for the channels that write to each person.

The first row names the columns. One column holds the address (`email` for email, `phone` for SMS),
`language` (or `lang`) picks the message's language, and every column is available to templates as
`recipient.<column>` (names lower-cased). Commas or semicolons, CRLF or LF, with or without a BOM.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from playbook.errors import PlaybookError

LANGUAGE_COLUMNS = ("language", "lang")
# Beyond this many, warnings are summed up: a list exported with the wrong column would flood the screen.
SHOWN_WARNINGS = 20
_CHUNK = 1 << 20
_NOT_UTF8 = "not UTF-8 text; save the list as UTF-8 (CSV UTF-8)"
_NUL = "a NUL byte, which no text holds; is this a spreadsheet file rather than its CSV export?"

# Returns the address in the form to send to, or raises ValueError saying what is wrong with it.
AddressCheck = Callable[[str], str]

# E.164: a + and at most 15 digits, the first one never 0 (it starts the country code).
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_PHONE_PUNCTUATION = re.compile(r"[\s.()\-]")


@dataclass(frozen=True)
class Recipient:
    """One row of a per-recipient channel's list (email, SMS): an address, a language, the other columns."""

    address: str
    lang: str | None
    fields: Mapping[str, str]
    line: int = 0


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


def recipient_language(recipient: Recipient, languages: list[str]) -> str:
    """The recipient's language when the channel speaks it (`en-GB` counts as `en`), else the first language."""
    lang = (recipient.lang or "").strip().lower()
    if lang in languages:
        return lang
    base = lang.split("-")[0].split("_")[0]
    return base if base in languages else languages[0]


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
        """What makes the list unusable: missing, not text, malformed rows, no address column, nobody to send to.

        The whole list is read (a 50,000-row list takes a fraction of a second): one stray quote can merge
        thousands of rows into one cell, and that must stop a send before it starts, not halfway through.
        """
        unreadable = self._unreadable()
        if unreadable:
            return unreadable
        if not any(self._valid(row) for row in self._rows()):
            return [f"{self.shown} has no recipient to send to (no row holds {self.kind})"]
        return []

    def _unreadable(self) -> list[str]:
        """What stops the list being read row by row (its addresses are checked elsewhere)."""
        if not self.path.is_file():
            return [f"recipient list {self.shown} does not exist"]
        bad_line, reason = self._binary_line()
        if bad_line is not None:
            return [f"{self.shown}:{bad_line}: {reason}"]
        header = self._header()
        if header is None:
            return [f"recipient list {self.shown} is empty: its first row must name the columns"]
        if self.column not in header:
            named = ", ".join(h for h in header if h) or "none"
            return [f"{self.shown}:1: no '{self.column}' column (columns: {named})"]
        try:
            for _ in self._rows():
                pass
        except PlaybookError as exc:
            return [str(exc)]
        return []

    def _valid(self, row: _Row) -> bool:
        try:
            self.check(row.fields.get(self.column, ""))
        except ValueError:
            return False
        return True

    def warnings(self) -> list[str]:
        """Rows that will not be sent: bad or missing addresses, and repeats of an earlier row."""
        if self._unreadable():
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
        return found

    def count(self) -> int:
        """Rows with an address, valid or not: a quick figure for plans and listings."""
        if self._unreadable():
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
            reader = csv.reader(handle, delimiter=_delimiter(handle), strict=True)
            for cells in _cells(reader, self.shown):
                if any(c.strip() for c in cells):
                    return [_column_name(c) for c in cells]
        return None

    def _rows(self) -> Iterator[_Row]:
        with self._open() as handle:
            reader = csv.reader(handle, delimiter=_delimiter(handle), strict=True)
            header: list[str] | None = None
            previous_end = 0
            for cells in _cells(reader, self.shown):
                start, previous_end = previous_end + 1, reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if header is None:
                    header = [_column_name(c) for c in cells]
                    continue
                if len(cells) != len(header):
                    # A cell too many or too few shifts every column after it: names and addresses would
                    # reach the wrong person.
                    raise PlaybookError(f"{self.shown}:{start}: {len(cells)} cells where the header has "
                                        f"{len(header)}; is a separator or a quote out of place?")
                fields = {name: value.strip() for name, value in zip(header, cells, strict=True) if name}
                yield _Row(start, fields)

    def _open(self) -> TextIO:
        # newline="" lets the csv module read quoted line breaks and CRLF; bytes that are not UTF-8 (which
        # problems() reports) become U+FFFD rather than stopping a send halfway through the list.
        return self.path.open(encoding="utf-8-sig", errors="replace", newline="")

    def _binary_line(self) -> tuple[int | None, str]:
        """The line of the first byte that is not UTF-8 text, or a NUL, and why; read in chunks (lists are large)."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        lines = 1
        with self.path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                nul = chunk.find(b"\0")
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    if nul == -1 or exc.start < nul:
                        return lines + chunk.count(b"\n", 0, exc.start), _NOT_UTF8
                if nul != -1:
                    return lines + chunk.count(b"\n", 0, nul), _NUL
                lines += chunk.count(b"\n")
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                return lines, _NOT_UTF8
        return None, ""


def _cells(reader: Any, shown: str) -> Iterator[list[str]]:
    """The rows of a strict csv reader; a row it cannot read is an error naming the line the row starts on."""
    start = 1
    try:
        for cells in reader:
            yield cells
            start = reader.line_num + 1
    except csv.Error as exc:
        # Usually a quote left open, which swallows the rest of the file into one cell.
        reason = str(exc)
        if reason == "unexpected end of data":
            reason = "a quoted cell runs to the end of the file"
        elif reason.endswith("expected after '\"'"):
            reason = "text after the closing quote of a quoted cell"
        raise PlaybookError(f"{shown}:{start}: cannot read this row ({reason}); is a quote left open?") from None


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
