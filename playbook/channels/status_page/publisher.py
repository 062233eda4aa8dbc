"""The status-page channel's settings, and the publisher that rebuilds the site from the ledger's history at each
update and writes it to a folder or an S3-compatible bucket."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr

from playbook.channels.status_page.bucket import Address, Bucket, BucketError
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
from playbook.publishers.base import (
    ChannelConfig,
    CheckResult,
    Delivery,
    Failure,
    PastPost,
    Publisher,
    Receipt,
    Stage,
)

STATE_FILE = "state.json"


class StatusPageConfig(ChannelConfig):
    output_dir: str = Field(description="The folder the site is written to (relative paths start at the home), "
                                        "or an S3-compatible bucket: s3://bucket/prefix")
    url: AnyHttpUrl = Field(description="Where that folder is served, for links, feeds and receipts")
    name: str | None = Field(default=None, description="The name at the top of the page (default: the URL's host)")
    history: int = Field(default=20, ge=1, le=500, description="How many incidents the page keeps, open ones aside")
    components: dict[str, dict[str, ComponentStatus]] = Field(
        default_factory=dict, description="The services the page lists, each with its state per phase "
                                          "(operational when a phase is not named)")
    endpoint_url: AnyHttpUrl | None = Field(default=None, description="An s3:// output's server when it is not AWS "
                                                                      "(MinIO, R2, Scaleway...)")
    region: str | None = Field(default=None, description="An s3:// output's region (default: $AWS_REGION, "
                                                         "else us-east-1)")
    access_key_id: SecretStr | None = Field(default=None, description="An s3:// output's access key (default: "
                                                                      "boto3's, from $AWS_ACCESS_KEY_ID...)")
    secret_access_key: SecretStr | None = Field(default=None, description="Its secret: write ${NAME}")


class StatusPagePublisher(Publisher[StatusPageConfig]):
    """Folds the ledger's history and each delivery into the site's state, then rewrites every file: atomically
    under a lock in a folder, pages last in a bucket."""

    Config = StatusPageConfig
    blocks = ("title", "body")
    deduplicates = True
    idempotency = "an update is known by its delivery key: publishing it again replaces it, never repeats it"

    @cached_property
    def bucket(self) -> Bucket | None:
        """The bucket the site goes to, for an s3:// output_dir."""
        address = Address.parse(self.config.output_dir)
        if address is None:
            return None

        def secret(value: SecretStr | None) -> str | None:
            return value.get_secret_value() if value is not None else None

        return Bucket(address, endpoint_url=str(self.config.endpoint_url) if self.config.endpoint_url else None,
                      region=self.config.region, access_key_id=secret(self.config.access_key_id),
                      secret_access_key=secret(self.config.secret_access_key), timeout=self.config.timeout)

    @cached_property
    def _upload_lock(self) -> threading.Lock:
        # The languages of a post run at once: their uploads of the same site take turns, never interleave.
        return threading.Lock()

    def history_size(self) -> int:
        return self.config.history

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
        bucket = self.bucket
        s3_only = [name for name in ("endpoint_url", "region", "access_key_id", "secret_access_key")
                   if getattr(self.config, name) is not None]
        if bucket is None:
            return self._validate_folder(s3_only)
        if not bucket.address.bucket:
            return [f"setting 'output_dir': '{self.config.output_dir}' names no bucket (s3://bucket/prefix)"]
        if (self.config.access_key_id is None) != (self.config.secret_access_key is None):
            return ["settings 'access_key_id' and 'secret_access_key' go together: set both, or neither to use "
                    "boto3's own (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment...)"]
        return []

    def _validate_folder(self, s3_only: list[str]) -> list[str]:
        if s3_only:
            return [f"setting '{s3_only[0]}' is for an s3:// output_dir only"]
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
        bucket = self.bucket
        if bucket is not None:
            try:
                await asyncio.to_thread(bucket.probe)
            except BucketError as exc:
                return CheckResult(False, f"setting 'output_dir': {exc}")
            return CheckResult(True, f"writable: {bucket.address}, served at {self.config.url}")
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
        if self.bucket is not None:
            return await asyncio.to_thread(self._upload, delivery, self.bucket)
        return await asyncio.to_thread(self._publish, delivery)

    def _upload(self, delivery: Delivery, bucket: Bucket) -> Receipt | Failure:
        # A bucket holds no state: the site is the ledger's history, the same whichever machine publishes, and
        # each language's upload carries the whole post (they run at once: the last one must lack none).
        state = SiteState()
        now = datetime.now(UTC)
        self._fold(state, delivery, now, whole_post=True)
        site = self.site(state)
        try:
            with self._upload_lock:
                bucket.upload(render_site(site, state, now))
        except BucketError as exc:
            return Failure(str(exc), retryable=not exc.final)
        return Receipt(remote_id=_update_id(_post_key(delivery)),
                       url=site.incident_url(delivery.incident_id, delivery.lang))

    def _publish(self, delivery: Delivery) -> Receipt | Failure:
        state_path = self.folder / STATE_FILE
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with locked(self.folder) as folder_fd:
                # The folder's own record: what it showed before the ledger kept texts, or from deliveries
                # handed over without a history. The ledger's history is folded over it.
                state = read_state(state_path)
                before = state.model_dump_json()
                now = datetime.now(UTC)
                changed = self._fold(state, delivery, now, whole_post=False)
                site = self.site(state)
                if state.model_dump_json() != before:
                    write_atomically(state_path, state.model_dump_json(indent=1).encode())
                # Written even when nothing changed: a retry after a crash mid-way completes the site.
                for file_name, content in render_site(site, state, now).items():
                    write_atomically(self.folder / file_name, content)
                os.fsync(folder_fd)
        except StateError as exc:
            return Failure(str(exc), retryable=False)
        except OSError as exc:
            return Failure(f"cannot write the status page in {self.folder}: {exc.strerror}", retryable=False)
        return Receipt(remote_id=_update_id(_post_key(delivery)),
                       url=site.incident_url(delivery.incident_id, delivery.lang),
                       note=None if changed else "already on the page")

    def _fold(self, state: SiteState, delivery: Delivery, now: datetime, *, whole_post: bool) -> bool:
        """Add the delivery's history, then the delivery itself, to `state`; False when the page showed it.

        `whole_post` shows the post being published in all its languages at once: without it, as in a folder
        whose state each language's delivery adds to under the lock, a language shows once it is delivered."""
        key = _post_key(delivery)
        text = Text(title=delivery.message.block("title").strip(), body=delivery.message.block("body").strip())
        shown = state.shows(delivery.incident_id, key, delivery.lang, text)
        for past in delivery.history:
            if past.key == key and not whole_post:
                continue
            for lang, blocks in past.texts.items():
                self._record(state, past, lang, Text(title=blocks.get("title", "").strip(),
                                                     body=blocks.get("body", "").strip()))
        current = PastPost(
            incident_id=delivery.incident_id, playbook_id=delivery.playbook_id, drill=delivery.drill,
            detected_at=delivery.detected_at or now, seq=0, phase=delivery.phase, issued_at=now, key=key,
            texts={}, next_update_at=delivery.next_update_at, timezone=delivery.timezone, stage=delivery.stage)
        self._record(state, current, delivery.lang, text)
        return not shown

    def _record(self, state: SiteState, post: PastPost, lang: str, text: Text) -> None:
        state.record(
            incident_id=post.incident_id, playbook=post.playbook_id, drill=post.drill, timezone=post.timezone,
            key=post.key, update_id=_update_id(post.key), phase=post.phase, status=status_of(post.phase, post.stage),
            lang=lang, text=text, now=post.issued_at, history=self.config.history, impact=impact_of(post.stage),
            components={name: by_phase.get(post.phase, "operational")
                        for name, by_phase in self.config.components.items()},
            next_update_at=post.next_update_at, started_at=post.detected_at,
        )


def _post_key(delivery: Delivery) -> str:
    # The same update in every language shares the delivery key minus its language part.
    return delivery.key.rsplit("/", 1)[0]


def _update_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


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
