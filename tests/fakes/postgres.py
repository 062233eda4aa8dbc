"""A real PostgreSQL server for the tests: a throwaway cluster in a temporary folder, and a fresh database a test.

The cluster is Debian's PostgreSQL (initdb and pg_ctl), started once per test process, on first use: under
pytest-xdist each worker that runs a PostgreSQL test starts its own. Sharing one cluster between workers would
need a lock, a count of users and a rule for who stops it when a worker dies; a small cluster costs about a
second and 30 MB, and the suite runs at most three workers.

initdb refuses to run as root, which tests do here and in CI: as root, the cluster belongs to the `postgres`
user (runuser), in a folder of its own under the system's temporary folder. A watchdog process, in a session
of its own, stops the server and removes the folder when the test process ends, even when it is killed.
"""

from __future__ import annotations

import glob
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The superuser the tests connect as, over TCP with a password (scram-sha-256), as a team's machines would.
USER = "playbook"
MISSING = ("PostgreSQL is not installed: the PostgreSQL ledger tests start a throwaway server with its initdb "
           "and pg_ctl. On Debian or Ubuntu run ./scripts/install-test-deps (it installs the 'postgresql' "
           "package), or put the folder holding initdb and pg_ctl on PATH")

# Runs beside the tests: waits for its standard input to close (the test process ended, however), then stops
# the server at once and removes its folder.
WATCHDOG = """
import shutil, subprocess, sys
sys.stdin.read()
subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


def binaries(search_path: str | None = None, installed: str = "/usr/lib/postgresql/*/bin") -> Path:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's /usr/lib/postgresql/VERSION/bin, newest."""
    on_path = shutil.which("initdb", path=search_path)
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted((Path(p) for p in glob.glob(installed)),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise RuntimeError(MISSING)


class PostgresServer:
    """A running cluster on 127.0.0.1 (and a unix socket in its folder), and its databases."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.as_owner: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.folder = Path(tempfile.mkdtemp(prefix="playbook-pg-"))
        self.data = self.folder / "data"
        self.password = secrets.token_hex(12)
        self.port = 0
        self._names = itertools.count(1)
        self._watchdog: subprocess.Popen[bytes] | None = None
        if self.as_owner:
            shutil.chown(self.folder, "postgres", "postgres")

    def start(self) -> None:
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n")
        if self.as_owner:
            shutil.chown(password_file, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(password_file), "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions")
        password_file.unlink()
        # The watchdog is started before the server, so that no server is ever left without one.
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(self.folder), *self.as_owner, str(self.bin / "pg_ctl"), "stop",
             "-D", str(self.data), "-m", "immediate"],
            stdin=subprocess.PIPE, start_new_session=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.launch()

    def launch(self) -> None:
        """Start the server (again), and return once it accepts connections."""
        # Durability is the machine's concern, not the tests': no fsync, and a small cluster.
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder}"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB"
                   " -c max_connections=60 -c max_wal_size=64MB -c log_min_messages=warning")
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", options)

    def halt(self) -> None:
        """Stop the server as a restart or a failover would (every connection ends), and return once it is down."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")

    def stop(self) -> None:
        """Stop the server and remove its folder (the watchdog does it once its input closes)."""
        if self._watchdog is not None:
            assert self._watchdog.stdin is not None
            self._watchdog.stdin.close()
            self._watchdog.wait(timeout=60)
            self._watchdog = None
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str, password: str | None = None) -> str:
        """The database's URL with `password` (the superuser's unless given; "" for none at all)."""
        secret = self.password if password is None else password
        return f"postgresql://{USER}{':' + secret if secret else ''}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE or DROP DATABASE), as the superuser."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(sql.encode())

    def new_database(self) -> str:
        """A new, empty database: its name."""
        name = f"ledger_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name}")
        return name

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run([*self.as_owner, str(self.bin / program), *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout}{done.stderr}{tail}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for this test process, started on first use and stopped at its end."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Database:
    """A test's own database on the server."""

    server: PostgresServer
    name: str

    def url(self, password: str | None = None) -> str:
        return self.server.url(self.name, password)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run one statement in the database as the superuser, behind the ledger's back: its rows."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            cursor = connection.execute(sql.encode(), args)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[Database]:
    """A new, empty database for this test, dropped once the test ends."""
    name = postgres_server.new_database()
    yield Database(postgres_server, name)
    postgres_server.admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_database: Database) -> str:
    """The URL of a new, empty database for this test, password included."""
    return postgres_database.url()
