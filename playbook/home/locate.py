"""The playbook home: a folder a comms team keeps in git, with playbooks/, templates/ and channels.yaml."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from playbook.errors import ConfigError, HomeError, did_you_mean, one_of
from playbook.home.model import Playbook, parse_model
from playbook.home.strict import ID_PATTERN
from playbook.home.yamlfile import YamlDoc, load_yaml
from playbook.ledger.location import is_database_url

STATE_DIR = ".playbook"


@dataclass
class Home:
    root: Path
    # A ledger file, or a PostgreSQL URL (a str, as a Path would fold its '//').
    state_override: Path | str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def locate(cls, home: Path | None = None, state: Path | str | None = None) -> Home:
        """--home, else $PLAYBOOK_HOME, else the nearest folder holding playbooks/ from here up, as git does.

        The ledger: --state, else $PLAYBOOK_STATE (a file, or a postgresql:// URL), else the home's own file.
        """
        chosen = home or (Path(os.environ["PLAYBOOK_HOME"]) if os.environ.get("PLAYBOOK_HOME") else None)
        given = state or os.environ.get("PLAYBOOK_STATE") or None
        root = chosen.expanduser().resolve() if chosen else find_home(Path.cwd())
        return cls(root=root, state_override=given if given is None or is_database_url(given) else Path(given))

    # -- layout ---------------------------------------------------------------------------------------
    @property
    def playbooks_dir(self) -> Path:
        return self.root / "playbooks"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def channels_file(self) -> Path:
        return self.root / "channels.yaml"

    @property
    def state(self) -> Path | str:
        """Where the ledger is: a SQLite file, or a PostgreSQL URL (its ${NAME} references not yet resolved)."""
        return self.state_override or self.root / STATE_DIR / "state.db"

    @property
    def log_path(self) -> Path:
        """The log a writing command keeps: beside a ledger file, else in the home's own .playbook folder."""
        state = self.state
        return state.with_name("playbook.log") if isinstance(state, Path) else self.root / STATE_DIR / "playbook.log"

    def shown(self, path: Path) -> Path:
        """A path as the user should read it: relative to the home where possible."""
        try:
            return path.relative_to(self.root)
        except ValueError:
            return path

    def require(self) -> None:
        if not self.playbooks_dir.is_dir():
            raise HomeError(
                f"{self.root} is not a playbook home (no playbooks/ folder): "
                "run 'playbook init DIR', or pass --home DIR / set PLAYBOOK_HOME"
            )

    # -- playbooks ------------------------------------------------------------------------------------
    def playbook_ids(self) -> list[str]:
        self.require()
        return sorted(p.stem for p in self.playbooks_dir.glob("*.yaml") if p.is_file())

    def playbook_path(self, playbook_id: str) -> Path:
        import re

        if not re.fullmatch(ID_PATTERN, playbook_id):
            raise HomeError(f"'{playbook_id}' is not a playbook id: lower-case letters, digits, - and _")
        return self.playbooks_dir / f"{playbook_id}.yaml"

    def load_playbook(self, playbook_id: str) -> Playbook:
        return self.load_playbook_doc(playbook_id)[0]

    def load_playbook_doc(self, playbook_id: str) -> tuple[Playbook, YamlDoc]:
        path = self.playbook_path(playbook_id)
        if not path.is_file():
            ids = self.playbook_ids()
            raise HomeError(
                f"no playbook '{playbook_id}'{did_you_mean(playbook_id, ids)}; known: {one_of(ids)}"
            )
        doc = load_yaml(path, display=self.shown(path), cache=self.parse_cache)
        playbook = parse_model(Playbook, doc)
        if playbook.id != path.stem:
            raise doc.error(f"id '{playbook.id}' must match the file name '{path.stem}'", ("id",))
        return playbook, doc

    @cached_property
    def parse_cache(self) -> Path | None:
        """Where parsed playbooks are kept between runs: $XDG_CACHE_HOME/crisis-playbook, else ~/.cache/...

        channels.yaml is never kept there: it may hold a secret written in clear.
        """
        base = self.environ.get("XDG_CACHE_HOME")
        if not base:
            try:
                base = str(Path.home() / ".cache")
            except RuntimeError:
                return None
        return Path(base) / "crisis-playbook" / "parsed"

    # -- channels and environment ---------------------------------------------------------------------
    def load_channels_doc(self) -> YamlDoc:
        if not self.channels_file.is_file():
            raise ConfigError(
                "no channels.yaml in the home: it says where messages go (see 'playbook init')",
                path=self.shown(self.channels_file),
            )
        return load_yaml(self.channels_file, display=self.shown(self.channels_file))

    @cached_property
    def env(self) -> dict[str, str]:
        """The environment, over the values of the home's .env (the real environment wins)."""
        values: dict[str, str] = {}
        dotenv = self.root / ".env"
        if dotenv.is_file():
            from dotenv import dotenv_values

            data = dotenv.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = data.count(b"\n", 0, exc.start) + 1
                raise ConfigError(f"{self.shown(dotenv)}:{line}: not UTF-8 text; save it as UTF-8") from None
            values.update({k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None})
        values.update(self.environ)
        return values


def find_home(start: Path) -> Path:
    """The nearest of `start` and its parents that holds a playbooks/ folder; `start` itself when none does.

    From `playbooks/` or `templates/x/` inside a home, commands then work as they do at its top.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "playbooks").is_dir():
            return folder
    return start
