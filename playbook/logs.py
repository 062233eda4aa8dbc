"""The log file beside the ledger: what was attempted, retried and refused, with every secret masked."""

from __future__ import annotations

import io
import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from playbook import secrets
from playbook.errors import LedgerWriteError

LOGGER = "playbook"
FORMAT = "%(asctime)s %(levelname)s %(message)s"


class _Redact(logging.Filter):
    """Masks secrets in the final message, whatever was interpolated into it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = secrets.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            # A traceback may quote a URL or a header: format it now and mask it like the message.
            record.msg += "\n" + secrets.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class _PrivateFileHandler(RotatingFileHandler):
    """A rotating log whose files, the current one and each one rotation starts, only their owner can read."""

    def _open(self) -> io.TextIOWrapper:
        def private(name: str, flags: int) -> int:
            return os.open(name, flags, 0o600)

        # Always "a": a rotating handler appends.
        return open(self.baseFilename, "a", encoding=self.encoding, errors=self.errors, opener=private)

    def handleError(self, record: logging.LogRecord) -> None:
        # logging would print a traceback on stderr for each record a full disk refuses: the run's own error
        # (the ledger, on the same disk, cannot be written either) is the one line the user needs.
        return None


def attach(path: Path) -> None:
    """Send the `playbook` logger to `path` (rotated at 5 MB, 5 kept); idempotent for one path."""
    logger = logging.getLogger(LOGGER)
    resolved = str(path.resolve())
    if any(getattr(h, "baseFilename", None) == resolved for h in logger.handlers):
        return
    # It names customers (per-recipient deliveries at debug level) and what went wrong: the owner's alone.
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler = _PrivateFileHandler(path, maxBytes=5_000_000, backupCount=5, encoding="utf-8")
    except OSError as exc:
        raise LedgerWriteError(f"the log {path} cannot be written ({exc.strerror}); nothing was sent. Free some "
                               "space or fix the permissions of the file and its folder, then run the command "
                               "again") from None
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_Redact())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # The terminal is output.py's: log records must not also reach stderr through the root logger.
    logger.propagate = False


def get() -> logging.Logger:
    return logging.getLogger(LOGGER)


def to_stderr() -> None:
    """Also send the `playbook` logger to stderr, secrets masked: a long-running process (the worker) has no
    other output, and its supervisor (systemd, a container runtime) keeps what it writes there."""
    import sys

    logger = logging.getLogger(LOGGER)
    if any(getattr(h, "stream", None) is sys.stderr for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_Redact())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
