"""A team's ledger on PostgreSQL, timed as an operator meets it: `playbook status` reading the shared
database against the same command reading a SQLite file, each with one incident, every run a fresh process.

The difference is what a PostgreSQL ledger adds to a read-only command: importing psycopg and connecting
(here to a local server; over a network, add its round trips).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_cli import BIN, ENV, PLAYBOOK, READ_RUNS, interleaved, new_home, row, timed

from tests.fakes.postgres import PostgresServer


def run() -> list[dict[str, Any]]:
    server = PostgresServer()
    try:
        server.start()
        url = server.url(server.new_database())
        with tempfile.TemporaryDirectory() as tmp:
            home = new_home(Path(tmp), "team")
            file = Path(tmp) / "laptop.db"
            playbook = [str(BIN / "playbook"), "--home", str(home)]
            for state in (url, str(file)):
                opened = subprocess.run([*playbook, "--state", state, "trigger", PLAYBOOK, "--yes", "--json"],
                                        capture_output=True, text=True, env=ENV)
                if opened.returncode != 0 or not json.loads(opened.stdout).get("incident"):
                    raise RuntimeError(f"the trigger failed: {opened.stderr.strip() or opened.stdout}")
            shared, alone = interleaved(READ_RUNS, lambda _: timed([*playbook, "--state", url, "status"]),
                                        lambda _: timed([*playbook, "--state", str(file), "status"]))
    finally:
        server.stop()
    # Informs: importing psycopg alone costs about 0.2 s here (README: "Benchmarks").
    return [row("playbook status: a PostgreSQL ledger vs a SQLite file", shared, alone, None)]
