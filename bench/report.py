"""The results: rich tables for people, one JSON document for machines, and the same tables
as Markdown for ``docs/BENCHMARKS.md``.

Every table is a :class:`Grid` (title, columns, rows of cells, caption); the cases' table
(:func:`cases_grid`) and the contenders' and scaling tables (:mod:`bench.contenders`) are
all rendered by :func:`render` and :func:`markdown`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text


@dataclass
class CaseResult:
    """One row of the table. ``data`` holds the raw figures (every repeat) for the JSON."""

    case: str
    tillflow: str
    reference: str
    ratio: float | None
    target: str
    passed: bool
    notes: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Column:
    name: str
    justify: Literal["left", "right"] = "left"
    wrap: bool = False
    """Only the one wrapping column folds long text (the notes)."""


Cell = str | Text


@dataclass
class Grid:
    """A table: rendered with rich on the terminal, as Markdown for the docs."""

    title: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str = ""


def rate(value: float, unit: str = "/s") -> str:
    return f"{value:,.0f}{unit}"


def mib(value: float) -> str:
    return f"{value / (1024 * 1024):,.0f} MiB"


def ratio_text(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 10:
        return f"{value:,.0f}×"
    if value >= 0.1:
        return f"{value:.2f}×"
    return f"{value:.2g}×"


def verdict(passed: bool) -> Text:
    return Text("PASS", style="bold green") if passed else Text("FAIL", "bold red")


def cases_grid(results: list[CaseResult], meta: dict[str, Any]) -> Grid:
    """The cases with their targets (the table ``python -m bench`` always prints)."""
    return Grid(
        title=(
            f"tillflow benchmark: {' + '.join(meta['groups'])} ({meta['mode']}, median of "
            f"{meta['repeats']} runs)"
        ),
        columns=[
            Column("case"),
            Column("tillflow", "right"),
            Column("reference (same run)", "right"),
            Column("ratio", "right"),
            Column("target"),
            Column("result"),
            Column("notes", wrap=True),
        ],
        rows=[
            [
                result.case,
                result.tillflow,
                result.reference,
                "—" if result.ratio is None else f"{result.ratio:.2f}×",
                result.target,
                verdict(result.passed),
                result.notes,
            ]
            for result in results
        ],
        caption=caption(meta),
    )


def render(console: Console, grids: list[Grid]) -> None:
    for grid in grids:
        table = Table(
            title=grid.title,
            box=box.SIMPLE_HEAVY,
            caption=grid.caption or None,
            caption_justify="left",
        )
        for column in grid.columns:
            if column.wrap:
                table.add_column(column.name, ratio=1, overflow="fold")
            else:
                table.add_column(column.name, justify=column.justify, no_wrap=True)
        for row in grid.rows:
            table.add_row(*row)
        console.print(table)


def caption(meta: dict[str, Any]) -> str:
    load = meta["load_average"]
    return (
        f"{meta['cpus']} CPUs, Python {meta['python']}, SQLite {meta['sqlite']}, "
        f"files in {meta['directory']} ({meta['filesystem']}); "
        f"load average {load['before']:.2f} before, {load['after']:.2f} after; "
        f"{meta['seconds']:.0f} s in all."
    )


def _plain(cell: Cell) -> str:
    text = cell.plain if isinstance(cell, Text) else cell
    return text.replace("|", "\\|").replace("\n", " ")


def grid_markdown(grid: Grid) -> str:
    align = {"left": ":---", "right": "---:"}
    lines = [
        f"#### {grid.title}",
        "",
        "| " + " | ".join(column.name for column in grid.columns) + " |",
        "| " + " | ".join(align[column.justify] for column in grid.columns) + " |",
    ]
    lines += ["| " + " | ".join(_plain(cell) for cell in row) + " |" for row in grid.rows]
    if grid.caption:
        lines += ["", grid.caption]
    return "\n".join(lines)


BEGIN: Final = "<!-- bench:begin (written by `python -m bench --markdown`; do not edit) -->"
END: Final = "<!-- bench:end -->"
_SECTION: Final = re.compile(r"<!-- bench:begin[^\n]*-->.*?<!-- bench:end -->", re.DOTALL)


def markdown(grids: list[Grid], meta: dict[str, Any]) -> str:
    """The generated section: the run's facts, then every table."""
    machine = meta.get("machine", {})
    load = meta["load_average"]
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    facts = [
        f"- run: {meta['started']} ({meta['mode']}, median of {meta['repeats']} runs, "
        f"{meta['seconds']:.0f} s in all)",
        f"- command: `{meta['command']}`",
        f"- load average (1, 5, 15 min): before {_loads(load['before_all'])}, "
        f"after {_loads(load['after_all'])}",
        f"- machine: {machine.get('nproc', '?')} CPUs ({machine.get('cpu_model', '?')}), "
        f"{machine.get('ram', '?')} RAM, databases in {meta['directory']} "
        f"({meta['filesystem']})",
        f"- versions: {versions}",
    ]
    body = "\n\n".join(grid_markdown(grid) for grid in grids)
    return f"{BEGIN}\n\n" + "\n".join(facts) + f"\n\n{body}\n\n{END}"


def _loads(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def write_markdown(path: Path, grids: list[Grid], meta: dict[str, Any]) -> None:
    """Replace the generated section of ``path`` (appended when there is none)."""
    section = markdown(grids, meta)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if _SECTION.search(text):
        text = _SECTION.sub(lambda _: section, text, count=1)
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + section + "\n"
    path.write_text(text, encoding="utf-8")


def write_json(
    path: Path,
    results: list[CaseResult],
    meta: dict[str, Any],
    tables: dict[str, Any] | None = None,
) -> None:
    document = {
        "meta": meta,
        "cases": [asdict(result) for result in results],
        "tables": tables or {},
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
