"""Errors a user can cause, and the exit statuses the CLI maps them to."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum
from pathlib import Path


class ExitStatus(IntEnum):
    OK = 0
    DELIVERY_FAILED = 1
    # A channel's online check or a rehearsal failed: like a failed delivery, something the team relies on did
    # not work (an alias of 1, so scripts see one "failed" status).
    CHECK_FAILED = 1
    INVALID_INPUT = 2
    # The operator answered no (or just Enter) at the confirmation: nothing sent, nothing recorded.
    DECLINED = 3
    # The run could not go on (the ledger cannot be written, a sending task crashed): the ledger says what went out.
    STOPPED = 4
    # Every delivery was attempted once and what still failed was left to a live worker, which retries it
    # (`playbook status` follows it; --wait retries in the command instead).
    HANDED_OFF = 5
    # A bug (sysexits' EX_SOFTWARE): the traceback is printed, secrets masked; the ledger says what went out.
    SOFTWARE = 70
    # Ctrl-C: what went out is in the ledger; `resume` finishes.
    INTERRUPTED = 130


class PlaybookError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2, nothing sent."""

    exit_status = ExitStatus.INVALID_INPUT

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class HomeError(PlaybookError):
    """The playbook home is missing or malformed."""


class ConfigError(PlaybookError):
    """A playbook or channels.yaml does not follow the format."""


class TemplateError(PlaybookError):
    """A template does not parse or does not render."""


class ChannelError(PlaybookError):
    """A channel is misconfigured: message names the channel and the setting."""


class VariableError(PlaybookError):
    """A --var is unknown, malformed, or a required variable has no value."""


class IncidentError(PlaybookError):
    """An incident that does not exist, is closed, or would duplicate an open one."""


class LedgerError(PlaybookError):
    """The ledger is missing, unreadable or corrupt: never silently replaced."""


class LedgerWriteError(LedgerError):
    """The ledger cannot be written (disk full, read-only): whatever is running stops where the ledger says."""

    exit_status = ExitStatus.STOPPED


class RunStopped(PlaybookError):
    """A run ended early (its ledger cannot be written, a sending task crashed); the ledger says what went out."""

    exit_status = ExitStatus.STOPPED


class ValidationFailed(PlaybookError):
    """One or more problems were found: the CLI has already shown them."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix when a close choice exists, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(choices: Iterable[str]) -> str:
    names = sorted(choices)
    return ", ".join(names) if names else "(none)"
