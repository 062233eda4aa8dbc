"""The benchmarks' SMTP server: plain SMTP on 127.0.0.1, no login, a handler that only counts.

`running()` serves it from a thread of this process; `python benchmarks/smtp_sink.py` serves it from a
process of its own (so its work is not counted as the measured side's): it prints its port, answers each
line read on stdin with the count so far, and stops at end of input.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from aiosmtpd.controller import Controller


class Counter:
    """Accepts every message and counts it, the least a server can do."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.received += 1
        return "250 2.0.0 Ok"


@contextmanager
def running() -> Iterator[tuple[int, Counter]]:
    """The server, started in a thread: (port, counter)."""
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    counter = Counter()
    # A fixed greeting name: otherwise each connection looks the machine's name up.
    controller = Controller(counter, hostname="127.0.0.1", port=port, server_hostname="bench.invalid",
                            ready_timeout=10)
    controller.start()
    try:
        yield port, counter
    finally:
        controller.stop()


def serve() -> None:
    with running() as (port, counter):
        print(port, flush=True)
        for _ in sys.stdin:
            print(counter.received, flush=True)


class Process:
    """The server in a process of its own, as a context manager: its `port`, and `count()` so far."""

    def __enter__(self) -> Process:
        self.process = subprocess.Popen([sys.executable, __file__], text=True, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        self.port = int(self._line())
        return self

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the SMTP server did not start")
        return line

    def count(self) -> int:
        """Messages the server has accepted so far."""
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write("count\n")
        stdin.flush()
        return int(self._line())

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


if __name__ == "__main__":
    serve()
