"""The Jinja sandbox templates run in: no Python internals, nothing that builds gigabytes or runs for ever.

Jinja's own sandbox refuses internals and bounds `range`. A message is a few thousand characters, while
`{{ 'a' * 10**10 }}`, `{{ s|replace('a', s) }}` or two nested `range` loops would take the machine's
memory or the whole window in the middle of an outage. Three bounds, each checked where a template can
spend: every operation that can make a large value out of small ones is measured before it runs (`*`, `+`,
`~`, `%`, the amplifying filters and str methods, assignments to a namespace, captured blocks); every loop
step and every call checks the clock; and a block's output is counted as it is produced.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import (
    do_batch,
    do_center,
    do_format,
    do_indent,
    do_replace,
    do_tojson,
    do_urlize,
    do_wordwrap,
    make_attrgetter,
    sync_do_join,
    sync_do_slice,
    sync_do_sum,
)
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

# The most characters or items one operation may produce (and the most bits of a power).
LONGEST_PRODUCT = 100_000
LARGEST_EXPONENT = 1_000
# The most characters a block may hold, or any one text or list a template builds.
LARGEST_TEXT = 1_000_000
# All a template may build while it renders, every intermediate value counted: a loop that builds a new
# large text at each step stays within memory long before it reaches the time limit.
MOST_BUILT = 50 * LARGEST_TEXT
# How long one template may take to render all its blocks, for one recipient.
RENDER_SECONDS = 5.0
# A printf-style conversion's width and precision: digits, or * (taken from the arguments).
_PRINTF_SIZES = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
# str methods that pad to a width given as an argument.
_PADDING = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


@dataclass
class _Budget:
    deadline: float
    built: int = 0


_budget: ContextVar[_Budget | None] = ContextVar("playbook_render_budget", default=None)


@contextmanager
def render_limits() -> Iterator[None]:
    """Bound what the templates rendered inside spend: RENDER_SECONDS and MOST_BUILT characters in all."""
    token = _budget.set(_Budget(time.monotonic() + RENDER_SECONDS))
    try:
        yield
    finally:
        _budget.reset(token)


def _check_time() -> None:
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise SecurityError(f"rendering for more than {RENDER_SECONDS:g} seconds (a loop too long?)")


def _building(size: int) -> None:
    """SecurityError when a value of `size` characters or items is more than a template may build."""
    if size > LARGEST_TEXT:
        raise SecurityError(f"a text or list of more than {LARGEST_TEXT:,} characters or items")
    budget = _budget.get()
    if budget is not None:
        budget.built += size
        if budget.built > MOST_BUILT:
            raise SecurityError(f"building more than {MOST_BUILT:,} characters in all")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | dict) else 0


def _text_size(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(str(value))


def join_bounded(parts: Iterable[str]) -> str:
    """The parts joined, stopping as soon as they pass LARGEST_TEXT: a block's output, counted as it comes."""
    taken: list[str] = []
    size = 0
    for part in parts:
        size += len(part)
        if size > LARGEST_TEXT:
            raise SecurityError(f"a block of more than {LARGEST_TEXT:,} characters")
        taken.append(part)
    return "".join(taken)


def _concat(parts: Iterable[str]) -> str:
    """Environment.concat, which joins what a captured block (`{% set x %}`, a macro's body) produced."""
    listed = parts if isinstance(parts, list) else list(parts)
    _building(sum(map(len, listed)))
    return "".join(listed)


class _Counted(NodeTransformer):
    """Routes every loop's iterable and every `~` through filters that check the clock and the size."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_playbook_loop", [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        listed = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(listed, "_playbook_concat", [], [], None, None, lineno=node.lineno)


def _counted(filter_: Callable[..., Any]) -> Callable[..., Any]:
    """`filter_`, checking the clock before and counting what it built after."""
    @functools.wraps(filter_)  # keeps jinja_pass_arg, which tells Jinja what to pass first
    def counted(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        result = filter_(*args, **kwargs)
        _building(_size(result))
        return result

    return counted


def _loop(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _check_time()
        yield item


@jinja2.pass_eval_context
def _concat_filter(eval_ctx: Any, parts: list[Any]) -> str:
    _building(sum(_text_size(p) for p in parts))
    return str(markup_join(parts) if eval_ctx.autoescape else str_join(parts))


class BoundedNamespace(Namespace):
    """`namespace()`, whose attributes, assigned in a loop, cannot grow past LARGEST_TEXT."""

    def __setitem__(self, name: str, value: Any) -> None:
        _building(_size(value))
        super().__setitem__(name, value)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    for count in (n, min, max):
        _check_width(count)
    _building(n * max * 12)
    return generate_lorem_ipsum(n, html, min, max)


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with every operation that can build something huge or run long bounded."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.concat = _concat  # type: ignore[method-assign]
        self.globals.update(namespace=BoundedNamespace, lipsum=_lipsum)
        self.filters.update(
            center=_bounded_center, indent=_bounded_indent, format=_bounded_format, replace=_bounded_replace,
            join=_bounded_join, wordwrap=_bounded_wordwrap, batch=_bounded_batch, slice=_bounded_slice,
            tojson=_bounded_tojson, urlize=_bounded_urlize, sum=_bounded_sum,
        )
        # `map('center', ...)` and the like apply filters item by item, out of sight of the checks above.
        self.filters.update({name: _counted(f) for name, f in self.filters.items()})
        self.filters.update(_playbook_loop=_loop, _playbook_concat=_concat_filter)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _Counted().visit(tree)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        # str.format pads to any width it is given, nested ones included ('{:>{}}'): the `format` filter
        # (printf-style, whose widths are checked) does the same job. Jinja hands str.format out before it
        # asks is_safe_attribute, hence here.
        if isinstance(obj, str) and attribute in ("format", "format_map"):
            return self.unsafe_undefined(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        # f['format'] reaches the same method through subscription.
        if isinstance(obj, str) and argument in ("format", "format_map"):
            return self.unsafe_undefined(obj, argument)
        return super().getitem(obj, argument)

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(obj, "__name__", ""), args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        _building(_size(result))
        return result

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and (
                abs(right) > LARGEST_EXPONENT
                # (10 ** 1000) ** 1000 has a billion digits: the result's size is what takes the time.
                or (isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > LONGEST_PRODUCT)):
            raise SecurityError(f"a power of more than {LONGEST_PRODUCT:,} bits")
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if (isinstance(sized, str | list | tuple) and isinstance(times, int)
                        and len(sized) * times > LONGEST_PRODUCT):
                    raise SecurityError(f"repeating a text or list to more than {LONGEST_PRODUCT:,} items")
        if operator == "+" and _size(left) + _size(right) > LARGEST_TEXT:
            _building(_size(left) + _size(right))
        if operator == "%" and isinstance(left, str):
            _check_printf(left, right)
        result = super().call_binop(context, operator, left, right)
        _building(_size(result))
        return result


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """SecurityError when a str method would build more than a template may: widths, replace, join."""
    if name in _PADDING:
        for width in (*args, *kwargs.values()):
            _check_width(width)
            if name == "expandtabs" and isinstance(width, int):
                _building(len(text) + text.count("\t") * width)
    elif name == "replace" and len(args) >= 2:
        _building(_replaced_size(text, args[0], args[1], args[2] if len(args) > 2 else None))
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, list | tuple):
            _building(sum(_text_size(i) for i in items) + len(text) * len(items))


def _check_printf(template: str, arguments: Any) -> None:
    """SecurityError when a printf-style format would pad past LONGEST_PRODUCT characters."""
    values = arguments if isinstance(arguments, tuple) else (arguments,)
    for sizes in _PRINTF_SIZES.findall(template):
        for size in sizes:
            wide = (size == "*" and any(isinstance(v, int) and abs(v) > LONGEST_PRODUCT for v in values)) or (
                size.isdigit() and int(size) > LONGEST_PRODUCT)
            if wide:
                raise SecurityError(f"a width or precision over {LONGEST_PRODUCT:,} characters")


def _check_width(width: Any) -> None:
    if isinstance(width, int) and abs(width) > LONGEST_PRODUCT:
        raise SecurityError(f"a width over {LONGEST_PRODUCT:,} characters")


def _replaced_size(text: str, old: Any, new: Any, count: Any) -> int:
    old, new = str(old), str(new)
    if len(new) <= len(old):
        return len(text)
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(text) + times * (len(new) - len(old))


def _bounded_center(value: str, width: int = 80) -> str:
    _check_width(width)
    return do_center(value, width)


def _bounded_indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _check_width(width)
    text = str(value)
    per_line = len(width) if isinstance(width, str) else width
    _building(len(text) + (text.count("\n") + 1) * max(per_line, 0))
    return do_indent(value, width, first, blank)


def _bounded_format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_printf(str(value), kwargs or args)
    return do_format(value, *args, **kwargs)


@jinja2.pass_eval_context
def _bounded_replace(eval_ctx: Any, value: str, old: str, new: str, count: int | None = None) -> str:
    _building(_replaced_size(str(value), old, new, count))
    return do_replace(eval_ctx, value, old, new, count)


@jinja2.pass_eval_context
def _bounded_join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    if attribute is not None:
        items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
    _building(sum(_text_size(i) for i in items) + _text_size(d) * len(items))
    return sync_do_join(eval_ctx, items, d)


@jinja2.pass_environment
def _bounded_wordwrap(environment: jinja2.Environment, s: str, width: int = 79, break_long_words: bool = True,
                      wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
    text = str(s)
    # Each line holds at least one character: at most one line break per character.
    _building(len(text) * (1 + len(wrapstring or environment.newline_sequence)))
    return do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _bounded_batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _check_width(linecount)
    return do_batch(value, linecount, fill_with)


def _bounded_slice(value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _check_width(slices)
    return sync_do_slice(value, slices, fill_with)


@jinja2.pass_eval_context
def _bounded_tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    if (indent if isinstance(indent, int) else len(indent) if isinstance(indent, str) else 0) > 100:
        raise SecurityError("a JSON indent over 100 characters")
    result = do_tojson(eval_ctx, value, indent)
    _building(len(result))
    return result


@jinja2.pass_eval_context
def _bounded_urlize(eval_ctx: Any, value: str, trim_url_limit: int | None = None, nofollow: bool = False,
                    target: str | None = None, rel: str | None = None,
                    extra_schemes: Iterable[str] | None = None) -> str:
    text = str(value)
    # Each link is at least a few characters and gains the target and rel attributes.
    _building(len(text) * (8 + len(target or "") + len(rel or "")))
    return do_urlize(eval_ctx, value, trim_url_limit, nofollow, target, rel, extra_schemes)


@jinja2.pass_environment
def _bounded_sum(environment: jinja2.Environment, iterable: Iterable[Any], attribute: str | int | None = None,
                 start: Any = 0) -> Any:
    items = list(iterable)
    if attribute is not None:
        items = list(map(make_attrgetter(environment, attribute), items))
    _building(_size(start) + sum(_size(i) for i in items))
    return sync_do_sum(environment, items, None, start)

