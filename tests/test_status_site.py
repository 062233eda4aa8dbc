"""The status site rebuilt from the ledger's history, and written to an S3-compatible bucket (moto's server mode,
spoken to by the real boto3), read back over HTTP by headless Chromium."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from playbook.channels.status_page import StatusPageConfig, StatusPagePublisher
from playbook.channels.status_page.bucket import Address, Bucket, BucketError
from playbook.commands.publishing import publish_phase, trigger
from playbook.commands.session import Session
from playbook.home.locate import Home
from playbook.ledger import open_ledger
from playbook.ledger.contract import Confirmation, Ledger, NewPost, delivery_key
from playbook.planning.history import channel_history
from playbook.publishers.base import ChannelContext, Stage
from tests.conftest import run_cli, write, write_starter
from tests.fakes.browser import dump_dom
from tests.fakes.s3 import KEY_ID, SECRET, S3Server, s3_server
from tests.test_status_page import CHANNELS, IDENTIFIED_EN, TITLE_EN, TITLE_FR, URL, follow, site, start, visible_text

# The bucket's pages are opened in Chromium: one browser at a time, with the status page's own tests.
pytestmark = pytest.mark.xdist_group("chromium")

UPDATE_PILL = re.compile(r'<li class="update"[^>]*>\s*<p class="update-meta"><span class="pill pill-(\w+)">')
SITE_FILES = ["banner.js", "banner.json", "feed.en.atom", "feed.fr.atom", "incidents.en.json", "incidents.fr.json",
              "incidents.json", "index.en.html", "index.fr.html", "index.html", "status.en.json", "status.fr.json",
              "status.json"]


def updates_by_incident(folder: Path, lang: str) -> dict[str, list[str]]:
    """Each incident of incidents.<lang>.json with its updates' statuses, newest first."""
    data = json.loads((folder / f"incidents.{lang}.json").read_text())
    return {i["id"]: [u["status"] for u in i["incident_updates"]] for i in data["incidents"]}


@pytest.fixture
def status_home(home: Path) -> Path:
    """The starter home with its website channel turned into a status page in public/status."""
    write(home / "channels.yaml", CHANNELS)
    return home


# -- the page from the ledger ---------------------------------------------------------------------------------

def test_a_site_folder_published_from_elsewhere_is_rebuilt_complete_from_the_ledger(status_home: Path) -> None:
    first = start(status_home).plan.incident_id
    follow(status_home, first, None)
    second = start(status_home, cause="a routing issue").plan.incident_id
    # Another machine sharing the ledger, or this one with its folder lost: a site folder that never saw them.
    write(status_home / "channels.yaml", CHANNELS.replace("output_dir: public/status", "output_dir: public/other"))
    follow(status_home, second, "identified")

    other = status_home / "public" / "other"
    for lang in ("fr", "en"):
        assert updates_by_incident(other, lang) == {second: ["identified", "investigating"],
                                                    first: ["resolved", "investigating"]}
    english = (other / "index.en.html").read_text()
    assert TITLE_EN in english and IDENTIFIED_EN in english
    assert TITLE_FR in (other / "index.html").read_text()
    # The folder that missed the last post shows what it saw; the ledger's page has it all.
    assert updates_by_incident(site(status_home), "en")[second] == ["investigating"]


def posted(ledger: Ledger, at: datetime, phase: str, sent: dict[tuple[str, str], bool], *,
           playbook: str = "whatsapp-outage", incident: str | None = None) -> str:
    """Record a post of `incident` (a new one when None) to website and x in fr and en, with its texts; confirm
    the deliveries `sent` marks True, fail the others. The incident's id."""
    texts = {"channels": {name: {"languages": {lang: {"title": f"{name} {phase} {lang}", "body": "b"}
                                               for lang in ("fr", "en")}} for name in ("website", "x")}}
    new = NewPost(phase, at, at + timedelta(minutes=30), None, {}, tuple((c, lang, None) for c, lang in sent),
                  texts=texts)
    if incident is None:
        created, post = ledger.create_incident(playbook, at, new, drill=False, allow_concurrent=True)
    else:
        created, post = ledger.incident(incident), ledger.add_post(incident, new)
    ledger.claim([delivery_key(created.id, post.seq, phase, c, lang) for c, lang in sent])
    for (name, lang), ok in sent.items():
        key = delivery_key(created.id, post.seq, phase, name, lang)
        ledger.mark_sending(key)
        if ok:
            ledger.mark_sent(Confirmation(key, None, None, None, at))
        else:
            ledger.mark_failed(key, "down")
    ledger.release()
    return created.id


def test_the_history_holds_what_reached_the_channel_in_the_languages_it_reached(home: Path) -> None:
    ledger = open_ledger(home / ".playbook" / "state.db")
    day = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    try:
        both = {("website", "fr"): True, ("website", "en"): True, ("x", "fr"): True, ("x", "en"): True}
        old = posted(ledger, day, "investigating", both, playbook="renamed-since")
        posted(ledger, day + timedelta(hours=1), "resolved", {**both, ("website", "en"): False}, incident=old)
        ledger.close_incident(old)
        elsewhere = posted(ledger, day + timedelta(days=1), "investigating", {("x", "fr"): True})
        current = posted(ledger, day + timedelta(days=2), "investigating", {("website", "fr"): False})
        history = channel_history(ledger, Home(root=home), "website", 20, ledger.posts(current)[-1])
    finally:
        ledger.close()

    assert elsewhere not in {p.incident_id for p in history}
    assert [(p.incident_id, p.phase, sorted(p.texts)) for p in history] == [
        (old, "investigating", ["en", "fr"]),
        (old, "resolved", ["fr"]),
        (current, "investigating", ["en", "fr"]),
    ]
    assert history[1].texts["fr"] == {"title": "website resolved fr", "body": "b"}
    assert history[1].key == f"{old}/2-resolved/website"
    # A playbook gone from the home: its stages are guessed from the posts, its times shown in UTC.
    assert (history[0].stage, history[1].stage, history[1].timezone) == (Stage(first=True), Stage(last=True), "UTC")
    # The playbook of the home: its own stage (the starter's `impact: major`) and zone.
    assert history[2].stage == Stage(first=True, impact="major") and history[2].timezone == "Europe/Paris"


# -- a bucket -------------------------------------------------------------------------------------------------

@pytest.fixture
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def bucket_channels(s3: S3Server, output_dir: str = "s3://status/site") -> str:
    return CHANNELS.replace("output_dir: public/status", f"output_dir: {output_dir}\n"
                            f"    endpoint_url: {s3.endpoint}\n"
                            "    access_key_id: ${S3_KEY_ID}\n"
                            "    secret_access_key: ${S3_SECRET}")


@pytest.fixture
def bucket_home(status_home: Path, s3: S3Server) -> Path:
    """The status home with its page in the bucket `status`, under site/; the keys in the home's .env."""
    s3.bucket("status")
    write(status_home / "channels.yaml", bucket_channels(s3))
    write(status_home / ".env", f"S3_KEY_ID={KEY_ID}\nS3_SECRET={SECRET}\n")
    return status_home


def objects(s3: S3Server, bucket: str = "status") -> dict[str, dict[str, Any]]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: dict(client.head_object(Bucket=bucket, Key=o["Key"])) for o in listed}


def test_the_site_in_a_bucket_opens_in_chromium_with_every_update_in_both_languages(bucket_home: Path,
                                                                                    s3: S3Server) -> None:
    incident = start(bucket_home).plan.incident_id
    follow(bucket_home, incident, "identified")
    french = dump_dom(f"{s3.endpoint}/status/site/index.html")
    english = dump_dom(f"{s3.endpoint}/status/site/index.en.html")

    assert '<html lang="fr"' in french and '<html lang="en"' in english
    assert TITLE_FR in visible_text(french) and "Cause identifiée" in visible_text(french)
    assert TITLE_EN in visible_text(english) and IDENTIFIED_EN in visible_text(english)
    # Newest first: the identified update above the first one.
    assert UPDATE_PILL.findall(english) == ["identified", "investigating"]
    summary = json.loads(s3.client().get_object(Bucket="status", Key="site/status.en.json")["Body"].read())
    assert [i["id"] for i in summary["incidents"]] == [incident]
    assert [u["status"] for u in summary["incidents"][0]["incident_updates"]] == ["identified", "investigating"]
    # No state file in a bucket, and nothing of this home's folder.
    assert sorted(objects(s3)) == [f"site/{name}" for name in SITE_FILES]
    assert not (bucket_home / "public").exists()


@pytest.mark.parametrize(("name", "content_type", "cache"), [
    ("index.html", "text/html; charset=utf-8", "public, max-age=60"),
    ("index.en.html", "text/html; charset=utf-8", "public, max-age=60"),
    ("status.json", "application/json; charset=utf-8", "public, max-age=60"),
    ("banner.json", "application/json; charset=utf-8", "public, max-age=60"),
    ("feed.fr.atom", "application/atom+xml; charset=utf-8", "public, max-age=60"),
    ("banner.js", "text/javascript; charset=utf-8", "public, max-age=86400"),
])
def test_each_file_in_the_bucket_has_its_type_and_how_long_caches_keep_it(bucket_home: Path, s3: S3Server,
                                                                         name: str, content_type: str,
                                                                         cache: str) -> None:
    start(bucket_home)
    head = objects(s3)[f"site/{name}"]
    assert (head["ContentType"], head["CacheControl"]) == (content_type, cache)


def test_the_pages_are_uploaded_last_and_index_html_after_them(s3: S3Server) -> None:
    s3.bucket("order")
    bucket = Bucket(Address("order", "www/"), endpoint_url=s3.endpoint, region=None, access_key_id=KEY_ID,
                    secret_access_key=SECRET, timeout=timedelta(seconds=10))
    keys: list[str] = []
    bucket.client().meta.events.register("before-call.s3.PutObject",
                                         lambda params, **_: keys.append(params["url_path"].rsplit("/", 1)[1]))
    bucket.upload({name: b"x" for name in reversed(SITE_FILES)})
    assert sorted(keys) == SITE_FILES
    assert keys[-3:-1] == ["index.en.html", "index.fr.html"] and keys[-1] == "index.html"


def test_two_machines_sharing_a_postgresql_ledger_publish_the_same_complete_site_to_one_bucket(
        tmp_path: Path, s3: S3Server, postgres_url: str) -> None:
    s3.bucket("status")
    machines = []
    for name in ("anna", "ben"):
        home = tmp_path / name
        write_starter(home)
        write(home / "channels.yaml", bucket_channels(s3))
        write(home / ".env", f"S3_KEY_ID={KEY_ID}\nS3_SECRET={SECRET}\n")
        machines.append(Home(root=home, state_override=postgres_url))
    anna, ben = machines

    session = Session(anna)
    try:
        incident = trigger(session, "whatsapp-outage", {}, None).plan.incident_id
    finally:
        session.close()
    page_by_anna = objects(s3)["site/index.en.html"]["ETag"]
    session = Session(ben)
    try:
        outcome = publish_phase(session, incident, "identified", {}, resolve_it=False)
    finally:
        session.close()
    assert outcome.result is not None and outcome.result.ok, outcome.result

    # Ben never published the first post; every file he wrote shows it beside his own, in both languages.
    client = s3.client()
    for lang in ("fr", "en"):
        data = json.loads(client.get_object(Bucket="status", Key=f"site/incidents.{lang}.json")["Body"].read())
        assert [[u["status"] for u in i["incident_updates"]] for i in data["incidents"]] == \
            [["identified", "investigating"]]
    english = client.get_object(Bucket="status", Key="site/index.en.html")["Body"].read().decode()
    assert TITLE_EN in english and IDENTIFIED_EN in english
    assert objects(s3)["site/index.en.html"]["ETag"] != page_by_anna


def test_channels_check_writes_a_probe_to_the_bucket_and_leaves_it_empty(bucket_home: Path, s3: S3Server) -> None:
    result = run_cli("channels", "--check", home=bucket_home)
    assert result.code == 0, result.output
    assert "writable: s3://status/site/, served at https://status.example.com/" in result.output
    assert objects(s3) == {}


def test_a_missing_bucket_fails_the_check_and_the_delivery_without_showing_the_secret(bucket_home: Path,
                                                                                      s3: S3Server) -> None:
    write(bucket_home / "channels.yaml", bucket_channels(s3, "s3://no-such-bucket/site"))
    checked = run_cli("channels", "--check", home=bucket_home)
    assert checked.code != 0
    assert "s3://no-such-bucket/site/ refused the write (NoSuchBucket:" in checked.output
    sent = run_cli("trigger", "whatsapp-outage", "--yes", "--json", home=bucket_home)
    assert sent.code == 1
    assert "refused the write (NoSuchBucket" in sent.output
    for said in (checked.output, sent.output):
        assert SECRET not in said and KEY_ID not in said


def publisher_with(home: Path, **settings: Any) -> StatusPagePublisher:
    config = StatusPageConfig.model_validate({"type": "status-page", "url": URL, **settings})
    return StatusPagePublisher("website", config, ChannelContext(home, ["fr", "en"]))


@pytest.mark.parametrize(("settings", "problem"), [
    ({"output_dir": "public/status", "endpoint_url": "http://127.0.0.1:9000"},
     "setting 'endpoint_url' is for an s3:// output_dir only"),
    ({"output_dir": "s3:///site"}, "setting 'output_dir': 's3:///site' names no bucket (s3://bucket/prefix)"),
    ({"output_dir": "s3://status", "access_key_id": "AKIA0000"},
     "settings 'access_key_id' and 'secret_access_key' go together: set both, or neither to use boto3's own "
     "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment...)"),
])
def test_bucket_settings_that_cannot_work_are_refused_before_anything_is_sent(home: Path, settings: dict[str, str],
                                                                              problem: str) -> None:
    assert publisher_with(home, **settings).validate() == [problem]


def test_a_bucket_that_cannot_be_reached_is_a_failure_worth_retrying(home: Path) -> None:
    publisher = publisher_with(home, output_dir="s3://status", endpoint_url="http://127.0.0.1:9",
                               access_key_id=KEY_ID, secret_access_key=SECRET, timeout="2s")
    assert publisher.bucket is not None
    with pytest.raises(BucketError) as caught:
        publisher.bucket.probe()
    assert not caught.value.final and "cannot write to s3://status/" in str(caught.value)
    assert not asyncio.run(publisher.check()).ok
