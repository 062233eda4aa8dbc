"""Where the ledger lives: a SQLite file (a path), or a PostgreSQL database a team shares (a URL).

A URL is libpq's: postgresql://user:password@host:port/dbname?sslmode=require (postgres:// too). Its password
may be written as ${NAME}, read from the environment (or the home's .env), or left out for libpq's own
PGPASSWORD and ~/.pgpass. Wherever a URL is shown, its password is masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from playbook import secrets
from playbook.errors import LedgerError

SCHEMES = ("postgresql://", "postgres://")


def is_database_url(state: Path | str) -> bool:
    """Whether `state` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(state, str) and state.strip().lower().startswith(SCHEMES)


def resolve_url(url: str, environ: Mapping[str, str]) -> str:
    """The URL with its ${NAME} references replaced from `environ`; its passwords become secrets (masked).

    LedgerError, naming the variable, when one is not set: the URL itself is never shown whole.
    """

    def missing(name: str) -> LedgerError:
        return LedgerError(f"the ledger URL {shown(url)} refers to ${{{name}}}, which is not set "
                           f"(export {name}=... or add it to the home's .env)")

    resolved = secrets.substitute(url.strip(), environ, missing)
    for password in _passwords(resolved):
        secrets.register(password)
        secrets.register(unquote(password))
    return resolved


def shown(url: str) -> str:
    """The URL as messages may show it: its password (in the address or as a parameter) replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, hosts = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":" + secrets.MASK
        netloc = f"{user}@{hosts}"
    query = "&".join(f"{key}={secrets.MASK if key == 'password' else value}"
                     for key, value in parse_qsl(parts.query, keep_blank_values=True))
    text = f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    return secrets.redact(text)


def _passwords(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [value for key, value in parse_qsl(parts.query) if key == "password"]
    user, at, _ = parts.netloc.rpartition("@")
    if at and ":" in user:
        found.append(user.split(":", 1)[1])
    return [p for p in found if p]
