"""Recipient lists: a CSV file of the home, read row by row, for the channels that write to each person.

The first row names the columns. One column holds the address (`email` for email, `phone` for SMS),
`language` (or `lang`) picks the message's language, and every column is available to templates as
`recipient.<column>` (names lower-cased). Commas or semicolons, CRLF or LF, with or without a BOM.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

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
    return _spoken(recipient.lang, languages)


def _spoken(written: str | None, languages: list[str]) -> str:
    lang = (written or "").strip().lower()
    if lang in languages:
        return lang
    base = lang.split("-")[0].split("_")[0]
    return base if base in languages else languages[0]


@dataclass(frozen=True)
class Audience:
    """Who a per-recipient channel reaches: recipients per language, and the first of each (a plan's sample)."""

    counts: dict[str, int]
    first: dict[str, Recipient]

    @classmethod
    def of(cls, recipients: Iterable[Recipient], languages: list[str]) -> Audience:
        counts = dict.fromkeys(languages, 0)
        first: dict[str, Recipient] = {}
        for recipient in recipients:
            lang = recipient_language(recipient, languages)
            counts[lang] += 1
            first.setdefault(lang, recipient)
        return cls(counts, first)


@dataclass(frozen=True)
class ListReading:
    """All that one read of a list tells: what stops it, the rows it skips, and who is on it."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Rows with an address, valid or not: a quick figure for plans and listings.
    count: int = 0
    # Recipients to send to (valid, each address once) by the language their row gives, with the first of each.
    by_written_lang: dict[str | None, int] = field(default_factory=dict)
    first_by_written_lang: dict[str | None, Recipient] = field(default_factory=dict)

    @property
    def recipients(self) -> int:
        return sum(self.by_written_lang.values())

    def audience(self, languages: list[str]) -> Audience:
        """The recipients per language of a channel speaking `languages` (the first takes the rest)."""
        counts = dict.fromkeys(languages, 0)
        first: dict[str, Recipient] = {}
        for written, number in self.by_written_lang.items():
            lang = _spoken(written, languages)
            counts[lang] += number
            recipient = self.first_by_written_lang[written]
            if lang not in first or recipient.line < first[lang].line:
                first[lang] = recipient
        return Audience(counts, first)


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
    def read(self) -> ListReading:
        """The whole list, opened and parsed once: its problems, the rows that will not be sent, who is on it.

        The whole list is read (a 50,000-row list takes a fraction of a second): one stray quote can merge
        thousands of rows into one cell, and that must stop a send before it starts, not halfway through.
        """
        if not self.path.is_file():
            return ListReading([f"recipient list {self.shown} does not exist"])
        with self.path.open("rb") as raw:
            bad_line, reason = _binary_line(raw)
            if bad_line is not None:
                return ListReading([f"{self.shown}:{bad_line}: {reason}"])
            raw.seek(0)
            with self._text(raw) as handle:
                return self._read(handle)

    def _read(self, handle: TextIO) -> ListReading:
        rows = _Rows(handle, self.shown)
        found: list[str] = []
        unreadable: str | None = None
        count = 0
        first_line: dict[str, int] = {}
        by_lang: dict[str | None, int] = {}
        first: dict[str | None, Recipient] = {}
        try:
            for row in rows:
                if rows.header is not None and self.column not in rows.header:
                    break
                value = row.fields.get(self.column, "")
                count += bool(value)
                try:
                    address = self.check(value)
                except ValueError as exc:
                    found.append(f"{self.shown}:{row.line}: {_quoted(value)} is not {self.kind} ({exc}); "
                                 "this row is skipped")
                    continue
                seen = first_line.setdefault(address.lower(), row.line)
                if seen != row.line:
                    found.append(f"{self.shown}:{row.line}: {address} repeats line {seen}; it is sent once")
                    continue
                recipient = _recipient(address, row)
                by_lang[recipient.lang] = by_lang.get(recipient.lang, 0) + 1
                first.setdefault(recipient.lang, recipient)
        except PlaybookError as exc:
            unreadable = str(exc)
        if rows.header is None:
            return ListReading([unreadable or f"recipient list {self.shown} is empty: its first row must name the "
                                "columns"])
        # A missing column says more than the rows it leaves unreadable.
        if self.column not in rows.header:
            named = ", ".join(h for h in rows.header if h) or "none"
            return ListReading([f"{self.shown}:1: no '{self.column}' column (columns: {named})"])
        if unreadable is not None:
            return ListReading([unreadable])
        if len(found) > SHOWN_WARNINGS:
            rest = len(found) - SHOWN_WARNINGS
            found = [*found[:SHOWN_WARNINGS], f"{self.shown}: and {rest:,} more rows like these"]
        problems = [] if by_lang else [f"{self.shown} has no recipient to send to (no row holds {self.kind})"]
        return ListReading(problems, found, count, by_lang, first)

    def problems(self) -> list[str]:
        """What makes the list unusable: missing, not text, malformed rows, no address column, nobody to send to."""
        return self.read().problems

    def warnings(self) -> list[str]:
        """Rows that will not be sent: bad or missing addresses, and repeats of an earlier row."""
        return self.read().warnings

    def count(self) -> int:
        """Rows with an address, valid or not: a quick figure for plans and listings."""
        return self.read().count

    # -- sending -----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Recipient]:
        """Each valid address once, in file order; bad rows and repeats are skipped (`warnings` lists them)."""
        seen: set[str] = set()
        with self._text(self.path.open("rb")) as handle:
            for row in _Rows(handle, self.shown):
                try:
                    address = self.check(row.fields.get(self.column, ""))
                except ValueError:
                    continue
                key = address.lower()
                if key in seen:
                    continue
                seen.add(key)
                yield _recipient(address, row)

    @staticmethod
    def _text(raw: BinaryIO) -> TextIO:
        # newline="" lets the csv module read quoted line breaks and CRLF; bytes that are not UTF-8 (which
        # read() reports) become U+FFFD rather than stopping a send halfway through the list.
        return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _recipient(address: str, row: _Row) -> Recipient:
    lang = next((row.fields[c] for c in LANGUAGE_COLUMNS if row.fields.get(c)), None)
    return Recipient(address=address, lang=lang, fields=row.fields, line=row.line)


class _Rows:
    """The rows of a list under its header; `header` is known once the first row is read."""

    def __init__(self, handle: TextIO, shown: str) -> None:
        self.handle = handle
        self.shown = shown
        self.header: list[str] | None = None

    def __iter__(self) -> Iterator[_Row]:
        reader = csv.reader(self.handle, delimiter=_delimiter(self.handle), strict=True)
        previous_end = 0
        for cells in _cells(reader, self.shown):
            start, previous_end = previous_end + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if self.header is None:
                self.header = [_column_name(c) for c in cells]
                continue
            if len(cells) != len(self.header):
                # A cell too many or too few shifts every column after it: names and addresses would
                # reach the wrong person.
                raise PlaybookError(f"{self.shown}:{start}: {len(cells)} cells where the header has "
                                    f"{len(self.header)}; is a separator or a quote out of place?")
            fields = {name: value.strip() for name, value in zip(self.header, cells, strict=True) if name}
            yield _Row(start, fields)


def _binary_line(handle: BinaryIO) -> tuple[int | None, str]:
    """The line of the first byte that is not UTF-8 text, or a NUL, and why; read in chunks (lists are large)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 1
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
