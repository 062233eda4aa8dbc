"""Safe YAML loading that remembers where every value was written, for file:line:column errors."""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playbook.errors import ConfigError

# A playbook is a page of text; anything bigger is a mistake or an attack (a "billion laughs" of aliases).
MAX_BYTES = 1_000_000
MAX_NODES = 50_000

Loc = tuple[str | int, ...]

@dataclass
class YamlDoc:
    """A parsed YAML document and the position of every key and value in it."""

    path: Path
    data: Any
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def where(self, loc: Loc) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the deepest known part of `loc`."""
        for end in range(len(loc), -1, -1):
            pos = self.positions.get(tuple(loc[:end]))
            if pos is not None:
                return pos
        return None, None

    def at(self, loc: Loc) -> YamlDoc:
        """The part of the document under `loc`, with positions re-rooted there."""
        n = len(loc)
        positions = {k[n:]: v for k, v in self.positions.items() if k[:n] == loc}
        return YamlDoc(self.path, None, positions)

    def error(self, message: str, loc: Loc = ()) -> ConfigError:
        line, column = self.where(loc)
        return ConfigError(message, path=self.path, line=line, column=column)


def load_yaml(path: Path, *, display: Path | None = None, cache: Path | None = None) -> YamlDoc:
    """Parse `path` with the safe loader; errors carry the file, line and column.

    With `cache` (a folder), a file parsed before with the same bytes is read back from there instead.
    """
    shown = display or path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", path=shown) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=shown) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"file is {len(raw):,} bytes; the limit is {MAX_BYTES:,}", path=shown)
    entry = _cache_entry(cache, path) if cache is not None else None
    key = _cache_key(raw) if entry is not None else ""
    if entry is not None:
        cached = _read_cache(entry, key)
        if cached is not None:
            return YamlDoc(path=shown, data=cached[0], positions=cached[1])
    from playbook.home.yamlparse import parse

    doc = parse(raw, shown)
    if entry is not None:
        _write_cache(entry, key, doc)
    return doc


# PyYAML's pure-Python parser is the one that refuses what users must be told about (libyaml accepts
# `{fr: Quand ?}`), and it is slow: a page of playbook takes longer to parse than the rest of `playbook list`.
# So what it built from a file is kept, keyed by the file's bytes and by the code that built it, one entry
# per file (the cache stays as small as the set of playbooks). Only successes are kept: a broken file is
# parsed again and its error is the same, word for word. marshal reads back nothing but plain values; a
# document holding a YAML timestamp (a datetime) cannot be written and is simply parsed each time.
_CACHE_FORMAT = b"1"
_KEPT_SECONDS = 30 * 24 * 3600


def _cache_entry(cache: Path, path: Path) -> Path:
    return cache / f"{hashlib.sha256(os.fsencode(path.resolve())).hexdigest()[:32]}.marshal"


def _cache_key(raw: bytes) -> str:
    import importlib.util

    digest = hashlib.sha256(_CACHE_FORMAT + b"\0" + raw)
    # PyYAML's and the builder's files, and this one (MAX_NODES): upgrading PyYAML or editing the builder or
    # its limits invalidates every entry.
    spec = importlib.util.find_spec("yaml")
    for code in (spec.origin if spec else None, str(Path(__file__).with_name("yamlparse.py")), __file__):
        if code:
            stat = os.stat(code)
            digest.update(f"\0{code}\0{stat.st_mtime_ns}\0{stat.st_size}".encode())
    return digest.hexdigest()


def _read_cache(entry: Path, key: str) -> tuple[Any, dict[Loc, tuple[int, int]]] | None:
    try:
        stored = marshal.loads(entry.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not (isinstance(stored, tuple) and len(stored) == 3 and stored[0] == key and isinstance(stored[2], dict)):
        return None
    return stored[1], stored[2]


def _write_cache(entry: Path, key: str, doc: YamlDoc) -> None:
    try:
        data = marshal.dumps((key, doc.data, doc.positions))
    except ValueError:
        return
    partial = entry.with_name(f"{entry.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written aside then renamed: a reader never sees half an entry, two writers (processes or threads)
        # never mix theirs.
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(data)
        os.replace(partial, entry)
        _forget_old(entry.parent)
    except OSError:
        # A read-only or full disk only costs the next run its speed.
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def _forget_old(cache: Path) -> None:
    """Remove the entries written over a month ago: most are of homes since deleted (a playbook still in use
    is parsed once more), so the cache does not grow with every folder a playbook was ever read from."""
    import time

    too_old = time.time() - _KEPT_SECONDS
    for old in cache.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < too_old:
                old.unlink()
