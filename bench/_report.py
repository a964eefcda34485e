"""The Markdown page of a benchmark run: command, machine, targets, figures, profiles and notes."""

from __future__ import annotations

from pathlib import Path

from bench._results import Figure, ScenarioResult, Target


def format_value(value: float | None, unit: str) -> str:
    """Format a figure for the page: rates with thousands separators, times and ratios with a few digits."""
    if value is None:
        return "not measured"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    if unit == "s":
        return f"{value:.2f} s"
    if unit in ("ms", "MB", "µs"):
        return f"{value:,.1f} {unit}"
    if unit == "":
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,.2f} {unit}"


def _target_row(target: Target) -> str:
    goal = f"{target.comparison} {format_value(target.goal, target.unit)}"
    if target.not_judged is not None:
        return f"| {target.name} | {format_value(target.measured, target.unit)} | {goal} | " \
               f"not judged: {target.not_judged} | |"
    met = {True: "yes", False: "**no**", None: "not measured"}[target.met]
    return f"| {target.name} | {format_value(target.measured, target.unit)} | {goal} | {met} | {target.shortfall()} |"


def _figure_row(figure: Figure) -> str:
    value = format_value(figure.value, figure.unit) if figure.value is not None or not figure.note else ""
    note = figure.note
    if figure.value is None and figure.note:
        value, note = figure.note, ""
    return f"| {figure.name} | {value} | {note} |"


def render_report(
    *,
    command: str,
    date: str,
    machine: list[tuple[str, str]],
    results: list[ScenarioResult],
    total_seconds: float,
    notes: str,
) -> str:
    """Return the page for one run."""
    lines = [
        "# Benchmarks",
        "",
        "This page is written by `make bench` (`python -m bench.run`); do not edit it by hand. Every figure in "
        "the tables of the scenarios was measured in the one run described here, so the ratios compare parts "
        "measured minutes apart on the same machine. The profiles come from separate, shorter runs of the same "
        "invocation, because the profiler slows the daemon down. Targets are judged only at the full sizes. "
        "The notes at the end come from `bench/notes.md`, were written on the machine they describe, and name "
        "the runs their own figures and tables come from.",
        "",
        "## Run",
        "",
        f"- command: `{command}`",
        f"- date: {date}",
        f"- duration: {total_seconds:.0f} s",
    ]
    lines += [f"- {name}: {value}" for name, value in machine]
    lines += [
        "",
        "## Targets",
        "",
        "| target | measured | goal | met | shortfall |",
        "|---|---:|---|---|---|",
    ]
    for result in results:
        lines += [_target_row(target) for target in result.targets]
    if any(target.met is False and target.not_judged is None for result in results for target in result.targets):
        lines += ["", "Why a target is missed: see \"Why targets are missed\" in the notes at the end."]
    for result in results:
        lines += ["", f"## {result.title}", ""]
        lines += [f"- {text}" for text in result.setup]
        if result.seconds is None:
            lines.append("- measured in the same run as the scenario above")
        else:
            lines.append(f"- time for this scenario: {result.seconds:.0f} s; load average (1/5/15 min) at its "
                         f"start and end: {result.load}")
        if result.error is not None:
            lines += ["", f"The scenario failed: {result.error}"]
        if result.figures:
            lines += ["", "| figure | value | note |", "|---|---:|---|"]
            lines += [_figure_row(figure) for figure in result.figures]
        for title, summary in result.profiles:
            lines += ["", f"Profile of the {title} (py-spy, `--gil`):", "", summary]
    if notes.strip():
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def write_report(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
