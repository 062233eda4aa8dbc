"""Sandboxed Jinja rendering of a phase's template into blocks, with Babel date and duration filters."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import jinja2
from jinja2.exceptions import SecurityError

from playbook.errors import TemplateError
from playbook.publishers.base import Message
from playbook.rendering.sandbox import Sandbox, join_bounded, render_limits
from playbook.textsafe import text_only
from playbook.timeparse import parse_duration

BLOCKS = ("title", "short", "body", "html")

# Babel 2.x has no CLDR "atTime" patterns, which is what makes French read "25 novembre 2026 à 14:05"
# rather than "25 novembre 2026, 14:05". These are CLDR's own for the languages we know; others fall
# back to Babel's long date-time pattern.
_AT_TIME = {
    "fr": "{1} 'à' {0}",
    "en": "{1} 'at' {0}",
    "de": "{1} 'um' {0}",
    "es": "{1}, {0}",
    "it": "{1} 'alle ore' {0}",
    "nl": "{1} 'om' {0}",
    "pt": "{1} 'às' {0}",
}


@dataclass
class RenderContext:
    """What a template sees, apart from the playbook's variables."""

    playbook_id: str
    playbook_name: Mapping[str, str]
    timezone: str
    incident_id: str
    detected_at: datetime
    phase: str
    next_update_at: datetime | None = None
    # When the last phase was issued: the end of the disruption, for "it lasted 3 hours".
    resolved_at: datetime | None = None
    drill: bool = False
    # A holding update: the current phase published again by the worker because the next update is overdue.
    holding: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise jinja2.TemplateRuntimeError(f"'{value}' is not a date-time (ISO 8601 expected)") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise jinja2.TemplateRuntimeError(f"cannot format {type(value).__name__} as a date-time")


def _locale_tz(ctx: Any) -> tuple[str, ZoneInfo]:
    return str(ctx.get("lang", "en")).replace("-", "_"), ZoneInfo(str(ctx.get("timezone", "UTC")))


@jinja2.pass_context
def filter_datetime(ctx: Any, value: Any, format: str = "long") -> str:
    locale, tz = _locale_tz(ctx)
    return _datetime_text(_as_datetime(value), format, locale, tz)


# Babel takes about 0.1 ms a call, and a per-recipient channel formats the same moments for every recipient.
@lru_cache(maxsize=256)
def _datetime_text(moment: datetime, format: str, locale: str, tz: ZoneInfo) -> str:
    from babel.dates import format_date, format_datetime, format_time

    moment = moment.astimezone(tz)
    if format != "long":
        return str(format_datetime(moment, format=format, tzinfo=tz, locale=locale))
    pattern = _AT_TIME.get(locale.split("_")[0])
    date_text = format_date(moment, "long", locale=locale)
    time_text = format_time(moment, "short", tzinfo=tz, locale=locale)
    if pattern is None:
        from babel import Locale

        pattern = Locale.parse(locale).datetime_formats["long"]
    return str(pattern).replace("'", "").format(time_text, date_text)


@jinja2.pass_context
def filter_date(ctx: Any, value: Any, format: str = "long") -> str:
    from babel.dates import format_date

    locale, tz = _locale_tz(ctx)
    return str(format_date(_as_datetime(value).astimezone(tz), format, locale=locale))


@jinja2.pass_context
def filter_time(ctx: Any, value: Any, format: str = "short") -> str:
    locale, tz = _locale_tz(ctx)
    return _time_text(_as_datetime(value), format, locale, tz)


@lru_cache(maxsize=256)
def _time_text(moment: datetime, format: str, locale: str, tz: ZoneInfo) -> str:
    from babel.dates import format_time

    return str(format_time(moment.astimezone(tz), format, tzinfo=tz, locale=locale))


@jinja2.pass_context
def filter_duration(ctx: Any, value: Any) -> str:
    """`1h30m` or a timedelta -> "1 heure et 30 minutes" / "1 hour and 30 minutes"."""
    from babel.dates import format_timedelta
    from babel.lists import format_list

    locale, _ = _locale_tz(ctx)
    if isinstance(value, str):
        try:
            value = parse_duration(value)
        except ValueError as exc:
            raise jinja2.TemplateRuntimeError(str(exc)) from None
    if not isinstance(value, timedelta):
        raise jinja2.TemplateRuntimeError(f"cannot format {type(value).__name__} as a duration")
    seconds = int(value.total_seconds())
    if seconds >= 60:
        # Past a minute, seconds are noise in a customer message: round to the nearest minute.
        seconds = (seconds + 30) // 60 * 60
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    units: tuple[tuple[int, int, Literal["hour", "minute", "second"]], ...] = (
        (hours, 3600, "hour"), (minutes, 60, "minute"), (secs, 1, "second"))
    parts = [
        format_timedelta(timedelta(seconds=amount * unit), granularity=name, threshold=1e9,
                         format="long", locale=locale)
        for amount, unit, name in units
        if amount
    ]
    if not parts:
        parts = [format_timedelta(timedelta(0), granularity="minute", threshold=1e9, locale=locale)]
    return str(format_list(parts, locale=locale))


def _nothing_for_none(value: Any) -> Any:
    return "" if value is None else value


def _environment(templates_dir: Path, autoescape: bool) -> jinja2.Environment:
    env = Sandbox(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # A variable left empty is None (so `{% if eta %}` reads naturally): printed, it must be nothing, not "None".
        finalize=_nothing_for_none,
    )
    env.filters.update(
        datetime=filter_datetime, date=filter_date, time=filter_time, duration=filter_duration
    )
    return env


def template_name(playbook_id: str, phase: str, lang: str) -> str:
    return f"{playbook_id}/{phase}.{lang}.j2"


class Renderer:
    """Renders `templates/<playbook>/<phase>.<lang>.j2` of one home; compiled templates are cached."""

    def __init__(self, templates_dir: Path, display_root: Path | None = None) -> None:
        self.templates_dir = templates_dir
        self.display_root = display_root or templates_dir.parent
        # Text blocks must not be HTML-escaped (an apostrophe stays an apostrophe in a post); the html
        # block must be. Jinja decides escaping per environment, hence two over the same files.
        self.text_env = _environment(templates_dir, autoescape=False)
        self.html_env = _environment(templates_dir, autoescape=True)

    def shown(self, name: str) -> str:
        path = self.templates_dir / name
        try:
            return str(path.relative_to(self.display_root))
        except ValueError:
            return str(path)

    def exists(self, name: str) -> bool:
        return (self.templates_dir / name).is_file()

    def load(self, name: str, html: bool = False) -> jinja2.Template:
        env = self.html_env if html else self.text_env
        try:
            return env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error: {exc.message}",
                path=self.shown(exc.name or name),
                line=exc.lineno,
            ) from None
        except jinja2.TemplateNotFound as exc:
            missing = exc.name or name
            raise TemplateError("template not found", path=self.shown(str(missing))) from None
        except UnicodeDecodeError:
            raise TemplateError("not UTF-8 text; save the template as UTF-8", path=self.shown(name),
                                line=_undecodable_line(self.templates_dir / name)) from None

    def blocks_of(self, name: str) -> set[str]:
        return set(self.load(name).blocks)

    def render(self, name: str, lang: str, variables: Mapping[str, Any], context: RenderContext,
               recipient: Mapping[str, str] | None = None, wanted: tuple[str, ...] = BLOCKS) -> Message:
        """Render the blocks of `name` that exist among `wanted`; errors carry the template's line."""
        return self.prepare(name, lang, variables, context, wanted).render(recipient)

    def prepare(self, name: str, lang: str, variables: Mapping[str, Any], context: RenderContext,
                wanted: tuple[str, ...] = BLOCKS) -> PreparedTemplate:
        """`name` loaded, with all it reads apart from the recipient, for rendering to many recipients."""
        text_template = self.load(name)
        present = tuple(block for block in wanted if block in text_template.blocks)
        html_template = self.load(name, html=True) if "html" in present else None
        return PreparedTemplate(self, name, lang, build_namespace(lang, variables, context),
                                present, text_template, html_template)

    def _render_block(self, template: jinja2.Template, block: str, ctx: jinja2.runtime.Context, name: str) -> str:
        produced = template.blocks[block](ctx)
        try:
            return join_bounded(produced).strip()
        except jinja2.UndefinedError as exc:
            raise self._runtime_error(exc, template, name, _undefined_message(exc)) from None
        except SecurityError as exc:
            raise self._runtime_error(exc, template, name, f"not allowed in a template: {exc}",
                                      getattr(produced, "gi_frame", None)) from None
        except jinja2.TemplateRuntimeError as exc:
            raise self._runtime_error(exc, template, name, str(exc)) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise self._runtime_error(exc, template, name, f"{type(exc).__name__}: {exc}") from None
        except RecursionError as exc:
            message = (f"not allowed in a template: calls nested more than {sys.getrecursionlimit():,} deep "
                       "(a macro calling itself without end?)")
            raise self._runtime_error(exc, template, name, message) from None
        except MemoryError as exc:
            raise self._runtime_error(exc, template, name, "the template ran out of memory") from None

    def _runtime_error(self, exc: BaseException, template: jinja2.Template, name: str,
                       message: str, producing: types.FrameType | None = None) -> TemplateError:
        # A block too long is stopped between two of its outputs: the block's own frame says where it was.
        line = (template.get_corresponding_lineno(producing.f_lineno)
                if producing is not None and producing.f_code.co_filename == template.filename else None)
        tb = exc.__traceback__
        # A block function called directly skips Jinja's traceback rewriting: its frames carry the line of
        # the compiled Python code, which the template's debug info maps back to the template's own line.
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == template.filename:
                line = template.get_corresponding_lineno(tb.tb_lineno)
            tb = tb.tb_next
        return TemplateError(message, path=self.shown(name), line=line)


class PreparedTemplate:
    """A template ready to render in one language: per recipient, only their row changes.

    A per-recipient channel renders it once per row of a list of thousands: the templates are loaded and
    the rest of what they read is gathered once, not for every row.
    """

    def __init__(self, renderer: Renderer, name: str, lang: str, namespace: dict[str, Any], blocks: tuple[str, ...],
                 text_template: jinja2.Template, html_template: jinja2.Template | None) -> None:
        self.renderer = renderer
        self.name = name
        self.lang = lang
        self.blocks = blocks
        self.text_template = text_template
        self.html_template = html_template
        # What Template.new_context would merge on each call: the template's globals under our namespace.
        self._text_vars = {**text_template.globals, **namespace}
        self._html_vars = {**html_template.globals, **namespace} if html_template is not None else {}

    def render(self, recipient: Mapping[str, str] | None = None) -> Message:
        """The blocks for this recipient (`recipient.<column>` in templates), or for no one."""
        # A read-only copy: a template can neither change the row nor see a later change to it.
        extra = {} if recipient is None else {"recipient": types.MappingProxyType(dict(recipient))}
        # One context per template, as when Jinja renders a whole template: its blocks share it.
        text_ctx = self.text_template.new_context({**self._text_vars, **extra}, shared=True)
        blocks: dict[str, str] = {}
        html_ctx = None
        with render_limits():
            for block in self.blocks:
                if block == "html" and self.html_template is not None:
                    if html_ctx is None:
                        html_ctx = self.html_template.new_context({**self._html_vars, **extra}, shared=True)
                    blocks[block] = text_only(self.renderer._render_block(self.html_template, block, html_ctx,
                                                                          self.name))
                else:
                    blocks[block] = text_only(self.renderer._render_block(self.text_template, block, text_ctx,
                                                                          self.name))
        return Message(lang=self.lang, blocks=blocks, template=self.name)

def _undecodable_line(path: Path) -> int | None:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1
    return None


_UNDEFINED = (
    (re.compile(r"^'(?P<name>.+)' is undefined$"), "undefined variable: {name}"),
    (re.compile(r"has no attribute '(?P<name>.+)'$"), "undefined field: {name}"),
    (re.compile(r"has no element (?P<name>.+)$"), "undefined element: {name}"),
)


def _undefined_message(exc: jinja2.UndefinedError) -> str:
    """Jinja's wording names Python types ("'mappingproxy object' has no attribute 'x'"): say what is missing."""
    text = str(exc.message or exc)
    for pattern, wording in _UNDEFINED:
        found = pattern.search(text)
        if found:
            return wording.format(name=found["name"])
    return f"undefined: {text}"


def build_namespace(lang: str, variables: Mapping[str, Any], context: RenderContext) -> dict[str, Any]:
    """What a template can read but `recipient`. Plain read-only data only: nothing with methods worth calling."""
    incident = {
        "id": context.incident_id,
        "detected_at": context.detected_at,
        "phase": context.phase,
        "next_update_at": context.next_update_at,
        "resolved_at": context.resolved_at,
        "drill": context.drill,
        "holding": context.holding,
    }
    namespace: dict[str, Any] = dict(variables)
    namespace.update(
        incident=types.MappingProxyType(incident),
        playbook=types.MappingProxyType(
            {"id": context.playbook_id, "name": context.playbook_name.get(lang, context.playbook_id)}
        ),
        lang=lang,
        timezone=context.timezone,
        drill=context.drill,
    )
    namespace.update(context.extra)
    return namespace
