"""Rehearsal results as files: JUnit XML for CI dashboards, Markdown and an SVG chart for managers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import timedelta
from html import escape
from pathlib import Path

from playbook import secrets
from playbook.commands.rehearsal import Rehearsal
from playbook.timeparse import format_duration


def write_junit(rehearsals: Sequence[Rehearsal], path: Path) -> None:
    """One <testsuite> per playbook, one <testcase> per check; skipped checks are <skipped/>."""
    root = ET.Element("testsuites", name="playbook rehearse")
    total = failures = skipped = 0
    for rehearsal in rehearsals:
        suite = ET.SubElement(root, "testsuite", name=f"rehearse.{rehearsal.playbook}",
                              timestamp=rehearsal.at.isoformat(timespec="seconds"))
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for check in rehearsal.checks:
            case = ET.SubElement(suite, "testcase", classname=f"{rehearsal.playbook}.{check.group}",
                                 name=secrets.redact(check.name), time=f"{check.seconds:.3f}")
            counts["tests"] += 1
            if check.skipped:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=secrets.redact(check.detail))
            elif not check.ok:
                counts["failures"] += 1
                failure = ET.SubElement(case, "failure", message=secrets.redact(check.detail)[:500])
                failure.text = secrets.redact(check.detail)
            else:
                ET.SubElement(case, "system-out").text = secrets.redact(check.detail)
        for key, value in counts.items():
            suite.set(key, str(value))
        suite.set("errors", "0")
        total += counts["tests"]
        failures += counts["failures"]
        skipped += counts["skipped"]
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("skipped", str(skipped))
    root.set("errors", "0")
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _minutes(seconds: float) -> str:
    return format_duration(timedelta(seconds=round(seconds)))


def verdict(rehearsal: Rehearsal) -> str:
    """The one sentence a manager reads: would the team meet its window today?"""
    window = format_duration(rehearsal.window)
    if not rehearsal.timings:
        budget = "The delivery time could not be estimated."
    else:
        slowest = max(rehearsal.timings, key=lambda t: t.seconds)
        how = "took" if slowest.measured else "needs about"
        if slowest.seconds <= rehearsal.window.total_seconds():
            budget = (f"Today the first notice would be out everywhere within the {window} window: the slowest "
                      f"channel, '{slowest.channel}' ({slowest.type}), {how} {_minutes(slowest.seconds)}.")
        else:
            budget = (f"Today the {window} window would be MISSED: '{slowest.channel}' ({slowest.type}) {how} "
                      f"{_minutes(slowest.seconds)}.")
    failed = rehearsal.failures
    if not failed:
        return f"{budget} All {len(rehearsal.checks)} checks passed."
    return f"{budget} {len(failed)} of {len(rehearsal.checks)} checks failed: fix them before the day comes."


def chart_svg(rehearsal: Rehearsal) -> str:
    """Horizontal bars: each channel's delivery time of the first phase, against the window (a red line)."""
    timings = sorted(rehearsal.timings, key=lambda t: -t.seconds)
    window = rehearsal.window.total_seconds()
    scale_max = max([window * 1.25, *(t.seconds * 1.05 for t in timings)]) or 1.0
    label_w, bar_w, row_h, top = 190, 520, 34, 46
    height = top + row_h * max(1, len(timings)) + 40
    width = label_w + bar_w + 130

    def x_of(seconds: float) -> float:
        return label_w + bar_w * seconds / scale_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13" role="img" '
        f'aria-label="Delivery time of the first phase per channel, against the window">',
        f'<title>{escape(rehearsal.playbook)}: delivery time against the {format_duration(rehearsal.window)} '
        "window</title>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="10" y="24" font-size="15" font-weight="bold" fill="#1a1a1a">{escape(rehearsal.name)}: first '
        f"phase delivery time vs the {format_duration(rehearsal.window)} window</text>",
    ]
    for i, timing in enumerate(timings):
        y = top + i * row_h
        colour = "#1b7f3b" if timing.seconds <= window else "#b3261e"
        kind = "measured" if timing.measured else "estimated"
        parts += [
            f'<text x="10" y="{y + 20}" fill="#1a1a1a">{escape(timing.channel)} ({escape(timing.type)})</text>',
            f'<rect x="{label_w}" y="{y + 6}" width="{max(2.0, x_of(timing.seconds) - label_w):.1f}" '
            f'height="20" fill="{colour}"><title>{escape(timing.arithmetic)}</title></rect>',
            f'<text x="{x_of(timing.seconds) + 6:.1f}" y="{y + 20}" fill="#1a1a1a">'
            f"{_minutes(timing.seconds)} ({kind})</text>",
        ]
    line_x = x_of(window)
    bottom = top + row_h * max(1, len(timings))
    parts += [
        f'<line x1="{line_x:.1f}" y1="{top - 4}" x2="{line_x:.1f}" y2="{bottom + 4}" stroke="#b3261e" '
        'stroke-width="2" stroke-dasharray="6 4"/>',
        f'<text x="{line_x:.1f}" y="{bottom + 22}" fill="#b3261e" text-anchor="middle">window '
        f"{format_duration(rehearsal.window)}</text>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def write_report(rehearsals: Sequence[Rehearsal], path: Path) -> list[Path]:
    """A Markdown report and, beside it, one SVG chart per playbook; returns the files written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path]
    lines = ["# Crisis plan rehearsal", ""]
    for rehearsal in rehearsals:
        status = "PASSED" if rehearsal.ok else "FAILED"
        lines += [f"## {rehearsal.name} (`{rehearsal.playbook}`): {status}", "",
                  f"Rehearsed on {rehearsal.at:%Y-%m-%d at %H:%M} UTC.", "", verdict(rehearsal), ""]
        if rehearsal.timings:
            chart = path.with_name(f"{path.stem}.{rehearsal.playbook}.svg")
            chart.write_text(chart_svg(rehearsal), encoding="utf-8")
            written.append(chart)
            lines += [f"![Delivery time per channel against the window]({chart.name})", "",
                      "| channel | time for the first phase | how it is known | pace from |", "|---|---|---|---|"]
            for t in sorted(rehearsal.timings, key=lambda t: -t.seconds):
                lines.append(f"| {t.channel} ({t.type}) | {_minutes(t.seconds)} | "
                             f"{'measured' if t.measured else 'estimated'}: {_cell(t.arithmetic)} | "
                             f"{_cell(t.source)} |")
            lines.append("")
        failed = rehearsal.failures
        if failed:
            lines += ["### What to fix", ""]
            lines += [f"- **{c.group}: {c.name}**: {c.detail}" for c in failed]
            lines.append("")
        lines += ["### Every check", "", "| result | check | detail |", "|---|---|---|"]
        for c in rehearsal.checks:
            mark = "skipped" if c.skipped else ("pass" if c.ok else "**FAIL**")
            lines.append(f"| {mark} | {_cell(c.group + ': ' + c.name)} | {_cell(c.detail)} |")
        lines.append("")
    path.write_text(secrets.redact("\n".join(lines)), encoding="utf-8")
    return written


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
