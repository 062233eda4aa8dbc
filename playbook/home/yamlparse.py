"""PyYAML's safe parser, building plain values and the position of each: what `playbook.home.yamlfile` caches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from playbook.errors import ConfigError
from playbook.home.yamlfile import MAX_NODES, Loc, YamlDoc

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


def parse(raw: bytes, shown: Path) -> YamlDoc:
    """The document in `raw` (at most MAX_BYTES), or a ConfigError naming `shown`, the line and the column."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", path=shown) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(
            f"invalid YAML: {_plain_problem(exc)}",
            path=shown,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        raise ConfigError(
            f"invalid YAML: a character YAML does not allow (U+{exc.character:04X}); remove it",
            path=shown, line=before.count("\n") + 1, column=len(before) - before.rfind("\n"),
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=shown) from None
    except RecursionError:
        raise _too_deep(shown) from None
    doc = YamlDoc(path=shown, data=None)
    if node is None:
        return doc
    builder = _Builder(doc)
    try:
        doc.data = builder.build(node, ())
    except RecursionError:
        raise _too_deep(shown) from None
    return doc


def _too_deep(shown: Path) -> ConfigError:
    # The parser recurses once per level: hundreds of nested [ or { are an attack or a broken file, not a playbook.
    return ConfigError("values nested too deeply (hundreds of levels of [ ], { } or indentation)", path=shown)


def _plain_problem(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem in words a comms team can act on, keeping its own words where they are clear."""
    problem = exc.problem or exc.context or "invalid YAML"
    if problem.startswith("expected <block end>"):
        return "this line's indentation does not match the lines above it"
    if problem == "mapping values are not allowed here":
        return "unexpected ':': check the indentation, or put the value in quotes if it contains ': '"
    if "'\\t'" in problem:
        return "a tab character: indent with spaces (YAML does not allow tabs)"
    context, opened = exc.context or "", exc.context_mark
    if "flow" in context and problem.endswith("but got '?'"):
        # A question in `{fr: Quand ?, en: When?}`: YAML 1.1 does not allow '?' in unquoted text there.
        return "a '?' inside [ ] or { }: put the text that contains it in quotes"
    if opened is not None and ("flow" in context or "quoted" in context):
        # An unclosed [, { or quote is reported where parsing gave up: also say where it was opened.
        return f"{problem} ({context} at line {opened.line + 1}, column {opened.column + 1})"
    return problem


class _Builder:
    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.count = 0
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise ConfigError(
                f"document expands to more than {MAX_NODES:,} values (aliases used as a YAML bomb?)",
                path=self.doc.path,
            )
        self.doc.positions.setdefault(loc, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.CollectionNode) and node.tag not in (_MAP_TAG, _SEQ_TAG):
            # Built below without the constructor, a tag would otherwise be silently dropped.
            raise self._at(node, f"invalid value: could not determine a constructor for the tag '{node.tag}'")
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self._at(key_node, "a key must be a plain value")
                # Keys are taken as written: YAML 1.1 would read `no:` (Norwegian) or `on:` as booleans.
                key = key_node.value
                if key in result:
                    raise self._at(key_node, f"duplicate key '{key}'")
                self.doc.positions[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = self.build(value_node, (*loc, key))
                # Point errors about a value at its key's line: that is where the user looks.
                self.doc.positions[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        if node.tag == _BOOL_TAG and node.value.lower() not in ("true", "false"):
            # YAML 1.1 reads yes/no/on/off as booleans: `no` is Norwegian in a list of languages, and a
            # boolean setting still accepts the text (pydantic reads "yes" and "off" as booleans).
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self._at(node, f"invalid value: {exc.problem}") from None
        except (ValueError, TypeError, AttributeError, OverflowError):
            # PyYAML's own constructors fail this way on a tag whose text does not fit it (`!!timestamp x`).
            raise self._at(node, f"invalid value: '{node.value}' cannot be read as {node.tag.rpartition(':')[2]}") \
                from None

    def _at(self, node: yaml.Node, message: str) -> ConfigError:
        return ConfigError(message, path=self.doc.path, line=node.start_mark.line + 1,
                           column=node.start_mark.column + 1)
