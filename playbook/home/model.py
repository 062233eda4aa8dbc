"""The playbook format, as pydantic models: unknown keys are refused with a "did you mean" hint."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from playbook.durations import PositiveDuration
from playbook.errors import ConfigError, did_you_mean

# Monitors live in their own module; the playbook format is still read from here whole.
from playbook.home.monitors import Expect as Expect
from playbook.home.monitors import Monitor as Monitor
from playbook.home.monitors import Watch as Watch
from playbook.home.strict import ID, Strict, at, check_id
from playbook.home.yamlfile import YamlDoc

Localized = dict[str, str]


class Variable(Strict):
    default: str | None = None
    required: bool = False
    description: str | None = None
    sample: str | None = Field(default=None, description="A value used by validate and rehearse, never sent")
    type: Literal["text", "datetime"] | None = Field(
        default=None, description="datetime: --var takes a time of day (18:00) or ISO 8601; by default, "
                                  "a variable whose sample or default is an ISO 8601 date-time is one")

    @property
    def is_datetime(self) -> bool:
        if self.type is not None:
            return self.type == "datetime"
        return any(_looks_like_datetime(v) for v in (self.sample, self.default) if v)

    @field_validator("default", "sample", mode="before")
    @classmethod
    def _scalar_as_text(cls, value: Any) -> Any:
        # `default: 3` or `default: true` in YAML should still mean the text the user typed.
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return value


def _looks_like_datetime(value: str) -> bool:
    from datetime import datetime

    if "T" not in value:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class Phase(Strict):
    channels: list[str] = Field(min_length=1)
    # How bad it is during this phase, in Statuspage's words: the status page's indicator and banner colour.
    impact: Literal["none", "minor", "major", "critical"] | None = None


class Reminders(Strict):
    """Who the worker reminds that an update is due: `before` it is, and again once it is overdue."""

    channels: list[str] = Field(min_length=1)
    before: PositiveDuration = timedelta(minutes=10)


class Holding(Strict):
    """The current phase published again on `channels` by the worker, once an update is overdue by `after`."""

    after: PositiveDuration = timedelta(minutes=15)
    channels: list[str] = Field(min_length=1)
    # A drill sends holding updates only when the team chose to rehearse that path.
    drills: bool = False


class FaqEntry(Strict):
    question: Localized
    answer: Localized


class Playbook(Strict):
    id: str
    name: Localized
    description: Localized | None = None
    languages: list[str] = Field(min_length=1)
    timezone: str = "UTC"
    window: PositiveDuration
    update_every: PositiveDuration
    rehearse_every: PositiveDuration = timedelta(days=30)
    vars: dict[str, Variable] = Field(default_factory=dict)
    phases: dict[str, Phase] = Field(min_length=1)
    checklist: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    # Not default_factory=list: pydantic reads the signature of list from its text, which costs start-up a
    # compilation of the tokenizer's regular expressions. A default list is copied for each playbook all the same
    # (Field only tells ruff, which cannot see that Strict is a pydantic model).
    faq: list[FaqEntry] = Field(default=[])
    reminders: Reminders | None = None
    holding: Holding | None = None
    monitors: list[Monitor] = Field(default=[])
    watch: Watch = Watch()

    @field_validator("id")
    @classmethod
    def _id_pattern(cls, value: str) -> str:
        return check_id(value)

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        for lang in value:
            if not _known_language(lang.replace("-", "_")):
                raise PydanticCustomError("language", f"unknown language code '{lang}'")
        if len(set(value)) != len(value):
            raise PydanticCustomError("language", "a language is listed twice")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", f"unknown time zone '{value}': use an IANA name such as Europe/Paris"
            ) from None
        return value

    @field_validator("vars", "phases")
    @classmethod
    def _identifier_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) and not ID.match(key):
                raise PydanticCustomError("name", f"'{key}' is not a valid name: use letters, digits, - and _")
        return value

    @field_validator("vars")
    @classmethod
    def _variable_names(cls, value: dict[str, Variable]) -> dict[str, Variable]:
        for key in value:
            if not key.isidentifier():
                raise PydanticCustomError(
                    "name", f"variable '{key}' must be usable in a template: letters, digits and _"
                )
            if key in RESERVED_NAMES:
                raise PydanticCustomError("name", f"variable '{key}' clashes with a name templates already see")
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> Playbook:
        langs = set(self.languages)
        self._check_localized(self.name, "name", ("name",))
        if self.description is not None:
            self._check_localized(self.description, "description", ("description",))
        for phase, by_lang in self.checklist.items():
            if phase not in self.phases:
                hint = did_you_mean(phase, self.phases)
                raise at(("checklist", phase), f"checklist names phase '{phase}', which is not in phases{hint}")
            for lang in by_lang:
                if lang not in langs:
                    raise at(("checklist", phase, lang),
                              f"checklist.{phase} has language '{lang}', not in languages")
        for i, entry in enumerate(self.faq):
            self._check_localized(entry.question, f"faq[{i}].question", ("faq", i, "question"))
            self._check_localized(entry.answer, f"faq[{i}].answer", ("faq", i, "answer"))
        for key, listed in (("reminders", self.reminders), ("holding", self.holding)):
            if listed is not None:
                _no_repeat(listed.channels, key)
        _no_repeat(self.watch.alert, "watch", "alert")
        names = [monitor.name for monitor in self.monitors]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise at(("monitors", i, "name"), f"monitor name '{name}' is used twice")
        return self

    def _check_localized(self, text: Localized, where: str, loc: tuple[str | int, ...]) -> None:
        missing = [lang for lang in self.languages if not text.get(lang)]
        extra = [lang for lang in text if lang not in self.languages]
        if missing:
            raise at(loc, f"{where} has no text in {', '.join(missing)}")
        if extra:
            raise at((*loc, extra[0]), f"{where} has language {', '.join(extra)}, not in languages")

    @property
    def default_language(self) -> str:
        return self.languages[0]

    @property
    def first_phase(self) -> str:
        return next(iter(self.phases))

    @property
    def last_phase(self) -> str:
        return list(self.phases)[-1]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def channel_names(self) -> list[str]:
        """Every channel any phase publishes to, in first-use order."""
        seen: dict[str, None] = {}
        for phase in self.phases.values():
            for name in phase.channels:
                seen.setdefault(name, None)
        return list(seen)


# `fr` or `fr_CA`: parsed by Babel as written, with nothing to resolve.
_PLAIN_LOCALE = re.compile(r"[a-z]{2,3}(?:_[A-Z]{2})?")


def _known_language(identifier: str) -> bool:
    """Whether Babel knows the locale, as `Locale.parse` decides."""
    # Locale.parse accepts a plain code at once when Babel holds its data file; looking for that file spares
    # every command that loads a playbook the import of Babel, a fifth of `playbook list`.
    data = _babel_locale_data()
    if data is not None and _PLAIN_LOCALE.fullmatch(identifier) and (data / f"{identifier}.dat").is_file():
        return True
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(identifier)
    except (UnknownLocaleError, ValueError):
        return False
    return True


@cache
def _babel_locale_data() -> Path | None:
    from importlib.util import find_spec

    spec = find_spec("babel")
    folders = spec.submodule_search_locations if spec else None
    return Path(next(iter(folders))) / "locale-data" if folders else None


def _no_repeat(names: list[str], key: str, setting: str = "channels") -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            raise at((key, setting, i), f"{key}.{setting} lists '{name}' twice")


# Names that templates receive from the tool itself; a variable of that name would hide them.
RESERVED_NAMES = frozenset({"incident", "playbook", "lang", "recipient", "drill", "channel", "phase"})


# Pydantic's words for a wrong type speak Python ("a valid dictionary"); these speak YAML.
_PLAIN_MESSAGES = {
    "list_type": "expected a list, such as [a, b], not {value!r}",
    "dict_type": "expected a mapping of keys (key: value), not {value!r}",
    "model_type": "expected a mapping of keys (key: value), not {value!r}",
    "string_type": "expected text, not {value!r}",
    "bool_type": "expected true or false, not {value!r}",
    "bool_parsing": "expected true or false, not {value!r}",
    "too_short": "must not be empty",
}


def validation_to_error(exc: ValidationError, doc: YamlDoc) -> ConfigError:
    """The first pydantic error as one line, pointing at the file, line and column of the bad key."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "unknown_key":
        # Point at the offending key itself; the message already names it.
        return doc.error(message, (*loc, err["ctx"]["key"]))
    if err["type"] == "misplaced":
        return doc.error(message, (*loc, *err["ctx"]["at"]))
    if err["type"] == "missing":
        message, loc = f"missing required key '{loc[-1]}'", loc[:-1]
    elif err["type"] in _PLAIN_MESSAGES:
        message = _PLAIN_MESSAGES[err["type"]].format(value=err.get("input"))
    field = ".".join(str(part) for part in loc)
    return doc.error(f"{field}: {message}" if field else message, loc)


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], doc: YamlDoc) -> M:
    if not isinstance(doc.data, dict):
        raise doc.error("expected a mapping of keys at the top of the file")
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise validation_to_error(exc, doc) from None
