"""The one benchmark command: runs every benchmarks/bench_*.py, prints one table of ratios against baselines.

Each module exposes `run() -> list[dict]`, one dict per row: name, measured, baseline, unit, ratio and
target. A number as target is the highest ratio that passes; a text states its own test, "OP NUMBER" with
OP one of < <= > >= (or ≤ ≥) against the ratio, or against the measured value when the unit follows the
number ("rate ratio >= 0.8", "< 150 MB"); None only informs. The table is also written as Markdown to
benchmarks/results/latest.md, ready to paste in the README. Exit 1 when a row fails.

    .venv/bin/python benchmarks/run.py [--only cli]
"""

from __future__ import annotations

import argparse
import importlib
import operator
import os
import platform
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COLUMNS = ("benchmark", "measured", "baseline", "ratio", "target", "result")


def modules(only: str | None) -> list[str]:
    """Names of the bench_*.py modules to run, in file order; `only` may be given with or without bench_."""
    names = sorted(path.stem for path in HERE.glob("bench_*.py"))
    if only is None:
        return names
    wanted = only if only.startswith("bench_") else f"bench_{only}"
    if wanted not in names:
        raise SystemExit(f"no benchmark '{only}'; known: {', '.join(n.removeprefix('bench_') for n in names)}")
    return [wanted]


_TARGET = re.compile(r"(<=|>=|<|>|≤|≥)\s*([0-9]+(?:\.[0-9]+)?)\s*(\S*)")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, "≤": operator.le, ">": operator.gt, ">=": operator.ge, "≥": operator.ge,
}


def verdict(row: dict[str, Any]) -> str:
    target = row.get("target")
    if row.get("error"):
        return "ERROR"
    if target is None:
        return "info"
    if isinstance(target, int | float):
        return "PASS" if row["ratio"] <= target else "FAIL"
    match = _TARGET.search(str(target))
    if match is None:
        raise ValueError(f"benchmark '{row['name']}': cannot read target '{target}' (write it like '<= 1.5')")
    op, number, unit = match.groups()
    value = row["measured"] if unit and unit == row["unit"] else row["ratio"]
    return "PASS" if _COMPARE[op](float(value), float(number)) else "FAIL"


def cells(row: dict[str, Any]) -> list[str]:
    if row.get("error"):
        return [row["name"], "-", "-", "-", "-", f"ERROR: {row['error']}"]
    unit, target = row["unit"], row["target"]
    target = "-" if target is None else (f"≤ {target:g}" if isinstance(target, int | float) else str(target))
    return [row["name"], f"{number(row['measured'])} {unit}", f"{number(row['baseline'])} {unit}",
            f"{row['ratio']:.2f}", target, verdict(row)]


def number(value: float) -> str:
    """Three decimals for seconds, fewer for larger quantities (megabytes, messages)."""
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"


def machine() -> str:
    return (f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def text_table(rows: Sequence[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def markdown_table(rows: Sequence[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def collect(names: Sequence[str]) -> list[dict[str, Any]]:
    """Every module's rows; a module that crashes gives one ERROR row instead of stopping the others."""
    rows: list[dict[str, Any]] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(importlib.import_module(name).run())
        except Exception as exc:
            traceback.print_exc()
            rows.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks and compare each with its baseline.")
    parser.add_argument("--only", metavar="NAME", help="run one module only (cli for bench_cli.py)")
    args = parser.parse_args(argv)
    # The modules import the project and its test fakes (the local webhook and SMTP servers).
    for path in (str(ROOT), str(HERE)):
        if path not in sys.path:
            sys.path.insert(0, path)
    rows = collect(modules(args.only))
    table = [cells(r) for r in rows]
    print()
    print(text_table(table))
    print(f"\nMachine: {machine()}")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(f"{markdown_table(table)}\n\nMachine: {machine()}\n", encoding="utf-8")
    print(f"Written to {(results / 'latest.md').relative_to(ROOT)}")
    return 0 if all(verdict(r) in ("PASS", "info") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
