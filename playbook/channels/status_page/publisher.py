"""The status-page channel's settings, and the publisher that records each update and rewrites the site's folder."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import AnyHttpUrl, Field

from playbook.channels.status_page.site import render_site
from playbook.channels.status_page.state import (
    STATUSES,
    ComponentStatus,
    Impact,
    SiteState,
    StateError,
    Status,
    Text,
    read_state,
)
from playbook.channels.status_page.view import Site
from playbook.publishers.base import ChannelConfig, CheckResult, Delivery, Failure, Publisher, Receipt, Stage

STATE_FILE = "state.json"


class StatusPageConfig(ChannelConfig):
    output_dir: str = Field(description="The folder the site is written to; relative paths start at the home")
    url: AnyHttpUrl = Field(description="Where that folder is served, for links, feeds and receipts")
    name: str | None = Field(default=None, description="The name at the top of the page (default: the URL's host)")
    history: int = Field(default=20, ge=1, le=500, description="How many incidents the page keeps, open ones aside")
    components: dict[str, dict[str, ComponentStatus]] = Field(
        default_factory=dict, description="The services the page lists, each with its state per phase "
                                          "(operational when a phase is not named)")


class StatusPagePublisher(Publisher[StatusPageConfig]):
    """Adds each delivery to the site's state under a folder lock, then rewrites every file atomically."""

    Config = StatusPageConfig
    blocks = ("title", "body")
    deduplicates = True
    idempotency = "an update is known by its delivery key: publishing it again replaces it, never repeats it"

    @property
    def folder(self) -> Path:
        path = Path(self.config.output_dir).expanduser()
        return path if path.is_absolute() else self.context.home / path

    def site(self, state: SiteState) -> Site:
        url = str(self.config.url)
        name = self.config.name or self.config.url.host or url
        languages = tuple(dict.fromkeys([*self.languages(), *state.languages()]))
        return Site(name=name, url=url, languages=languages, components=tuple(self.config.components))

    # -- checks ------------------------------------------------------------------------------------------------
    def validate(self) -> list[str]:
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            return [f"setting 'output_dir': {folder} is a file, not a folder"]
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            return [f"setting 'output_dir': folder {folder} cannot be written"]
        return []

    async def check(self) -> CheckResult:
        problems = self.validate()
        if problems:
            return CheckResult(False, problems[0])
        try:
            await asyncio.to_thread(self._probe)
        except OSError as exc:
            return CheckResult(False, f"setting 'output_dir': cannot write in {self.folder}: {exc.strerror}")
        return CheckResult(True, f"writable: {self.folder}, served at {self.config.url}")

    def _probe(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        probe = self.folder / f".probe-{os.getpid()}"
        write_atomically(probe, b"probe\n")
        probe.unlink()

    # -- publishing --------------------------------------------------------------------------------------------
    async def publish(self, delivery: Delivery) -> Receipt | Failure:
        return await asyncio.to_thread(self._publish, delivery)

    def _publish(self, delivery: Delivery) -> Receipt | Failure:
        # The same update in every language shares the delivery key minus its language part.
        key = delivery.key.rsplit("/", 1)[0]
        update_id = hashlib.sha256(key.encode()).hexdigest()[:12]
        text = Text(title=delivery.message.block("title").strip(), body=delivery.message.block("body").strip())
        state_path = self.folder / STATE_FILE
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with locked(self.folder) as folder_fd:
                state = read_state(state_path)
                now = datetime.now(UTC)
                changed = state.record(
                    incident_id=delivery.incident_id, playbook=delivery.playbook_id, drill=delivery.drill,
                    timezone=delivery.timezone, key=key, update_id=update_id,
                    phase=delivery.phase, status=status_of(delivery.phase, delivery.stage), lang=delivery.lang,
                    text=text, now=now, history=self.config.history, impact=impact_of(delivery.stage),
                    components={name: by_phase.get(delivery.phase, "operational")
                                for name, by_phase in self.config.components.items()},
                    next_update_at=delivery.next_update_at, started_at=delivery.detected_at,
                )
                site = self.site(state)
                if changed:
                    write_atomically(state_path, state.model_dump_json(indent=1).encode())
                # Written even when nothing changed: a retry after a crash mid-way completes the site.
                for file_name, content in render_site(site, state, now).items():
                    write_atomically(self.folder / file_name, content)
                os.fsync(folder_fd)
        except StateError as exc:
            return Failure(str(exc), retryable=False)
        except OSError as exc:
            return Failure(f"cannot write the status page in {self.folder}: {exc.strerror}", retryable=False)
        return Receipt(remote_id=update_id, url=site.incident_url(delivery.incident_id, delivery.lang),
                       note=None if changed else "already on the page")


def impact_of(stage: Stage) -> Impact:
    """The phase's `impact:` in the playbook; without one, major while open and none once resolved."""
    if stage.impact is not None:
        return stage.impact
    return "none" if stage.last else "major"


def status_of(phase: str, stage: Stage) -> Status:
    """A phase named like a Statuspage status is that status; else the first is investigating, the last resolved."""
    for status in STATUSES:
        if phase == status:
            return status
    if stage.first:
        return "investigating"
    if stage.last:
        return "resolved"
    return "identified"


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[int]:
    """Hold an exclusive lock on the folder itself (yielding its descriptor) until the block ends."""
    # Every file in the folder is replaced by rename, so none of them could carry the lock.
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def write_atomically(path: Path, content: bytes) -> None:
    """Replace `path` with `content` so a reader sees the old file or the new one, never half of one."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file readable by its owner only; the web server must read it too.
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
