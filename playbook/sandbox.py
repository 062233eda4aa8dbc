"""The Jinja sandbox templates run in: no Python internals, and nothing that builds gigabytes.

Jinja's own sandbox refuses internals and bounds `range`. A message is a few thousand characters, while
`{{ 'a' * 10**10 }}` or `{{ '%999999999s' % x }}` would take the machine's memory in the middle of an
outage: the operators and filters that can build something huge from a small template are bounded here.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.filters import do_center, do_format, do_indent
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The most characters or items one operation may produce (and the most bits of a power).
LONGEST_PRODUCT = 100_000
LARGEST_EXPONENT = 1_000
# A printf-style conversion's width and precision: digits, or * (taken from the arguments).
_PRINTF_SIZES = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with `*`, `**`, `%`, str.format and the padding filters bounded."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters.update(center=_bounded_center, indent=_bounded_indent, format=_bounded_format)

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
        if operator == "%" and isinstance(left, str):
            _check_printf(left, right)
        return super().call_binop(context, operator, left, right)


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


def _bounded_center(value: str, width: int = 80) -> str:
    _check_width(width)
    return do_center(value, width)


def _bounded_indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _check_width(width)
    return do_indent(value, width, first, blank)


def _bounded_format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_printf(str(value), kwargs or args)
    return do_format(value, *args, **kwargs)
