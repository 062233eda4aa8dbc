"""Templates: sandboxed Jinja, strict variables, HTML escaped only in the html block, Babel dates and durations."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from playbook.errors import TemplateError
from playbook.publishers.base import Message
from playbook.rendering.templates import RenderContext, Renderer

DETECTED = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)  # 14:05 in Paris (UTC+1 in November)


def context(timezone: str = "Europe/Paris", detected_at: datetime = DETECTED,
            next_update_at: datetime | None = None) -> RenderContext:
    return RenderContext(
        playbook_id="pb",
        playbook_name={"fr": "Panne de messagerie", "en": "Messaging outage", "de": "Messenger-Ausfall"},
        timezone=timezone,
        incident_id="pb-20261125-1405",
        detected_at=detected_at,
        phase="investigating",
        next_update_at=next_update_at,
    )


def render(tmp_path: Path, source: str, *, lang: str = "fr", variables: Mapping[str, str | None] | None = None,
           ctx: RenderContext | None = None, recipient: Mapping[str, str] | None = None) -> Message:
    """Write `source` as templates/pb/investigating.<lang>.j2 and render all its blocks."""
    path = tmp_path / "templates" / "pb" / f"investigating.{lang}.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    renderer = Renderer(tmp_path / "templates")
    return renderer.render(f"pb/investigating.{lang}.j2", lang, variables or {}, ctx or context(),
                           recipient=recipient)


def body(tmp_path: Path, expression: str, *, lang: str = "fr", variables: Mapping[str, str | None] | None = None,
         ctx: RenderContext | None = None) -> str:
    """The body block of a template made of `expression` alone."""
    message = render(tmp_path, "{% block body %}" + expression + "{% endblock %}", lang=lang, variables=variables,
                     ctx=ctx)
    return message.block("body")


# -- Babel: dates and durations in the message's language and the playbook's time zone -------------------

# Babel (CLDR 42+) writes a NARROW NO-BREAK SPACE (U+202F) between the time and AM/PM in English: the
# expected strings below are Babel's exact output, so a Babel upgrade that changes it shows up here.
@pytest.mark.parametrize(("lang", "expected"), [
    ("fr", "25 novembre 2026 à 14:05"),
    ("en", "November 25, 2026 at 2:05\u202fPM"),
    ("de", "25. November 2026 um 14:05"),
])
def test_datetime_filter_writes_each_language_its_own_way(tmp_path: Path, lang: str, expected: str) -> None:
    assert body(tmp_path, "{{ incident.detected_at | datetime }}", lang=lang) == expected


@pytest.mark.parametrize(("lang", "expected"), [
    ("fr", "25 novembre 2026 / 14:05"),
    ("en", "November 25, 2026 / 2:05\u202fPM"),
])
def test_date_and_time_filters_split_the_moment(tmp_path: Path, lang: str, expected: str) -> None:
    assert body(tmp_path, "{{ incident.detected_at | date }} / {{ incident.detected_at | time }}",
                lang=lang) == expected


@pytest.mark.parametrize(("timezone", "detected", "expected"), [
    ("Europe/Paris", datetime(2026, 11, 25, 13, 5, tzinfo=UTC), "14:05"),  # winter: UTC+1
    ("Europe/Paris", datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "14:00"),  # summer: UTC+2
    ("UTC", datetime(2026, 11, 25, 13, 5, tzinfo=UTC), "13:05"),
    ("Asia/Tokyo", datetime(2026, 11, 25, 23, 30, tzinfo=UTC), "08:30"),
])
def test_times_are_shown_in_the_playbooks_time_zone(tmp_path: Path, timezone: str, detected: datetime,
                                                     expected: str) -> None:
    ctx = context(timezone=timezone, detected_at=detected)
    assert body(tmp_path, "{{ incident.detected_at | time }}", ctx=ctx) == expected


def test_a_utc_date_crossing_midnight_in_paris_shows_the_local_day(tmp_path: Path) -> None:
    ctx = context(detected_at=datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
    assert body(tmp_path, "{{ incident.detected_at | datetime }}", ctx=ctx) == "1 janvier 2027 à 00:30"


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-25T18:00:00+01:00", "18:00"),  # an --var eta with its own offset
    ("2026-11-25T17:00:00Z", "18:00"),
    ("2026-11-25T17:00:00", "18:00"),  # naive means UTC
])
def test_date_variables_given_as_iso_text_are_converted(tmp_path: Path, value: str, expected: str) -> None:
    assert body(tmp_path, "{{ eta | time }}", variables={"eta": value}) == expected


def test_a_variable_that_is_not_a_date_is_a_template_error_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        body(tmp_path, "\n\n{{ eta | datetime }}", variables={"eta": "tomorrow"})
    assert str(caught.value) == (
        "templates/pb/investigating.fr.j2:3: 'tomorrow' is not a date-time (ISO 8601 expected)"
    )


@pytest.mark.parametrize(("lang", "expected"), [
    # Babel's French puts a NO-BREAK SPACE (U+00A0) between 1 and "heure".
    ("fr", "1\u00a0heure et 30 minutes"),
    ("en", "1 hour and 30 minutes"),
    ("de", "1 Stunde und 30 Minuten"),
])
def test_duration_filter_spells_out_1h30m(tmp_path: Path, lang: str, expected: str) -> None:
    assert body(tmp_path, "{{ '1h30m' | duration }}", lang=lang) == expected


def test_duration_filter_reads_the_difference_of_two_moments(tmp_path: Path) -> None:
    ctx = context(next_update_at=DETECTED + timedelta(hours=2))
    text = body(tmp_path, "{{ (incident.next_update_at - incident.detected_at) | duration }}", lang="en", ctx=ctx)
    assert text == "2 hours"


@pytest.mark.parametrize(("value", "expected"), [
    ("45s", "45 seconds"),
    ("2h", "2 hours"),
    ("1h1m", "1 hour and 1 minute"),
    ("1h1m1s", "1 hour and 1 minute"),  # past a minute, seconds round to the nearest minute
    ("1m31s", "2 minutes"),
])
def test_duration_filter_lists_every_unit_it_needs(tmp_path: Path, value: str, expected: str) -> None:
    assert body(tmp_path, "{{ d | duration }}", lang="en", variables={"d": value}) == expected


# -- what templates see -----------------------------------------------------------------------------------

def test_templates_see_incident_playbook_lang_and_variables(tmp_path: Path) -> None:
    ctx = context(next_update_at=DETECTED + timedelta(hours=1))
    text = body(tmp_path, "{{ incident.id }}|{{ incident.phase }}|{{ incident.next_update_at | time }}|"
                          "{{ playbook.id }}|{{ playbook.name }}|{{ lang }}|{{ brand }}",
                lang="en", variables={"brand": "Acme"}, ctx=ctx)
    assert text == "pb-20261125-1405|investigating|3:05\u202fPM|pb|Messaging outage|en|Acme"


def test_incident_holding_is_true_only_in_a_holding_update(tmp_path: Path) -> None:
    source = "{% if incident.holding %}still on it{% else %}first word{% endif %}"
    assert body(tmp_path, source) == "first word"
    assert body(tmp_path, source, ctx=replace(context(), holding=True)) == "still on it"


def test_the_playbook_name_follows_the_message_language(tmp_path: Path) -> None:
    assert body(tmp_path, "{{ playbook.name }}", lang="fr") == "Panne de messagerie"


def test_recipient_is_seen_only_by_per_recipient_renders(tmp_path: Path) -> None:
    source = "{% block body %}{% if recipient is defined %}Bonjour {{ recipient.name }}{% else %}Bonjour{% endif %}" \
             "{% endblock %}"
    assert render(tmp_path, source).block("body") == "Bonjour"
    assert render(tmp_path, source, recipient={"name": "Camille"}).block("body") == "Bonjour Camille"


def test_only_the_blocks_the_template_defines_are_rendered_and_stripped(tmp_path: Path) -> None:
    message = render(tmp_path, "{% block title %}  Titre  {% endblock %}\n{% block short %}\n Court\n{% endblock %}")
    assert dict(message.blocks) == {"title": "Titre", "short": "Court"}


# -- strict and sandboxed ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "message"), [
    ("{{ brnad }}", "undefined variable: brnad"),
    ("{{ incident.resolved }}", "undefined field: resolved"),
    ("{{ recipient.name }}", "undefined variable: recipient"),
])
def test_an_undefined_name_is_an_error_at_its_line(tmp_path: Path, expression: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "{% block title %}Titre{% endblock %}\n\n{% block body %}\nBonjour,\n" + expression
               + "\n{% endblock %}", variables={"brand": "Acme"})
    assert str(caught.value) == f"templates/pb/investigating.fr.j2:5: {message}"


def test_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "{% block title %}Titre{% endblock %}\n{% block body %}{{ brand }{% endblock %}")
    assert str(caught.value) == "templates/pb/investigating.fr.j2:2: template syntax error: unexpected '}'"


def test_a_missing_template_is_named(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    with pytest.raises(TemplateError) as caught:
        Renderer(tmp_path / "templates").render("pb/resolved.fr.j2", "fr", {}, context())
    assert str(caught.value) == "templates/pb/resolved.fr.j2: template not found"


@pytest.mark.parametrize(("expression", "unsafe"), [
    ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe."),
    ("{{ incident.__class__ }}", "access to attribute '__class__' of 'mappingproxy' object is unsafe."),
    ("{{ incident.detected_at.__class__.__subclasses__() }}",
     "access to attribute '__class__' of 'datetime' object is unsafe."),
    ("{{ cycler.__init__.__globals__ }}", "access to attribute '__init__' of 'type' object is unsafe."),
    ("{% set seen = [] %}{{ seen.append(1) }}", "access to attribute 'append' of 'list' object is unsafe."),
])
def test_the_sandbox_refuses_python_internals(tmp_path: Path, expression: str, unsafe: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "{% block body %}\n" + expression + "\n{% endblock %}")
    assert str(caught.value) == f"templates/pb/investigating.fr.j2:2: not allowed in a template: {unsafe}"


def test_the_namespace_cannot_be_changed_from_a_template(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "{% block body %}{{ incident.update(id='x') }}{% endblock %}")
    assert str(caught.value) == "templates/pb/investigating.fr.j2:1: undefined field: update"


def test_jinja_inside_a_variable_is_inert_text(tmp_path: Path) -> None:
    source = "{% block body %}{{ cause }}{% endblock %}{% block html %}<p>{{ cause }}</p>{% endblock %}"
    message = render(tmp_path, source, variables={"cause": "{{ 7*7 }} {% if 1 %}x{% endif %}"})
    assert message.block("body") == "{{ 7*7 }} {% if 1 %}x{% endif %}"
    assert message.block("html") == "<p>{{ 7*7 }} {% if 1 %}x{% endif %}</p>"


def test_html_is_escaped_in_the_html_block_only(tmp_path: Path) -> None:
    source = ("{% block short %}{{ brand }} : L’équipe d'{{ brand }}{% endblock %}"
              "{% block body %}{{ brand }}{% endblock %}"
              "{% block html %}<p>{{ brand }} — l'équipe</p>{% endblock %}")
    message = render(tmp_path, source, variables={"brand": "<b>Tom & Jerry's</b>"})
    assert message.block("short") == "<b>Tom & Jerry's</b> : L’équipe d'<b>Tom & Jerry's</b>"
    assert message.block("body") == "<b>Tom & Jerry's</b>"
    # The template's own markup and apostrophe stay; only the value is escaped.
    assert message.block("html") == "<p>&lt;b&gt;Tom &amp; Jerry&#39;s&lt;/b&gt; — l'équipe</p>"


def test_a_recipient_field_is_escaped_in_html_too(tmp_path: Path) -> None:
    message = render(tmp_path, "{% block html %}<p>Bonjour {{ recipient.name }}</p>{% endblock %}",
                     recipient={"name": "<script>alert(1)</script>"})
    assert message.block("html") == "<p>Bonjour &lt;script&gt;alert(1)&lt;/script&gt;</p>"


# -- limits: what a template may build and how long it may take ------------------------------------------

@pytest.mark.parametrize(("expression", "expected"), [
    ("{% for i in range(9) %}{{ 'a' * 100000 }}{% endfor %}", 900_000),
    ("{{ ('a' * 100000)|replace('a', 'bcd') }}", 300_000),
    ("{{ (['a' * 1000] * 900)|join(',') }}", 900_899),
    ("{% set ns = namespace(s='a') %}{% for i in range(19) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
     2**19),
    ("{{ ('a\n' * 1000)|indent(8) }}", 2000 + 999 * 8 - 1),
    ("{% for i in range(100) %}{% for j in range(1000) %}{{ '' }}{% endfor %}{% endfor %}", 0),
], ids=["loop-under-1mb", "replace", "join", "doubling", "indent", "100k-steps"])
def test_large_but_bounded_work_renders_in_full(tmp_path: Path, expression: str, expected: int) -> None:
    assert len(body(tmp_path, expression)) == expected


def test_a_block_over_1mb_is_refused_at_the_line_producing_it(tmp_path: Path) -> None:
    source = "{% block body %}\n{% for i in range(11) %}\n{{ 'a' * 100000 }}\n{% endfor %}\n{% endblock %}"
    with pytest.raises(TemplateError) as raised:
        render(tmp_path, source)
    assert str(raised.value) == ("templates/pb/investigating.fr.j2:3: not allowed in a template: a block of more "
                                 "than 1,000,000 characters")


def test_the_time_limit_counts_from_the_start_of_each_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock that moves 0.1 s each time it is read: for the deadline, then at each call, filter and loop step.
    ticks = itertools.count()
    monkeypatch.setattr("playbook.rendering.sandbox.time.monotonic", lambda: next(ticks) / 10)
    monkeypatch.setattr("playbook.rendering.sandbox.RENDER_SECONDS", 0.45)
    path = tmp_path / "templates" / "pb" / "investigating.fr.j2"
    path.parent.mkdir(parents=True)
    path.write_text("{% block body %}{% for _ in range(recipient.steps|int) %}.{% endfor %}{% endblock %}",
                    encoding="utf-8")
    prepared = Renderer(tmp_path / "templates").prepare("pb/investigating.fr.j2", "fr", {}, context())

    # Ten renders of 0.4 s each: 4 s in all, but none over its own limit.
    assert [prepared.render({"steps": "2"}).block("body") for _ in range(10)] == [".."] * 10
    with pytest.raises(TemplateError) as raised:
        prepared.render({"steps": "3"})
    assert str(raised.value) == ("templates/pb/investigating.fr.j2:1: not allowed in a template: rendering for more "
                                 "than 0.45 seconds (a loop too long?)")


def test_running_out_of_memory_is_one_error_naming_the_template(tmp_path: Path) -> None:
    path = tmp_path / "templates" / "pb" / "investigating.fr.j2"
    path.parent.mkdir(parents=True)
    path.write_text("{% block body %}\n{{ 'x'|exhaust }}{% endblock %}", encoding="utf-8")
    renderer = Renderer(tmp_path / "templates")

    def exhaust(value: str) -> str:
        raise MemoryError

    renderer.text_env.filters["exhaust"] = exhaust
    with pytest.raises(TemplateError) as raised:
        renderer.render("pb/investigating.fr.j2", "fr", {}, context())
    assert str(raised.value) == "templates/pb/investigating.fr.j2:2: the template ran out of memory"
