"""The results: one rich table for people, one JSON document for machines."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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


def rate(value: float, unit: str = "/s") -> str:
    return f"{value:,.0f}{unit}"


def mib(value: float) -> str:
    return f"{value / (1024 * 1024):,.0f} MiB"


def render(console: Console, results: list[CaseResult], meta: dict[str, Any]) -> None:
    """Print the table; ``meta`` (machine, sizes, load) goes in its caption."""
    table = Table(
        title=(
            f"tillflow benchmark: {' + '.join(meta['groups'])} ({meta['mode']}, median of "
            f"{meta['repeats']} runs)"
        ),
        box=box.SIMPLE_HEAVY,
        caption=_caption(meta),
        caption_justify="left",
    )
    table.add_column("case", style="bold", no_wrap=True)
    table.add_column("tillflow", justify="right", no_wrap=True)
    table.add_column("reference (same run)", justify="right", no_wrap=True)
    table.add_column("ratio", justify="right", no_wrap=True)
    table.add_column("target", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("notes", ratio=1, overflow="fold")
    for result in results:
        verdict = Text("PASS", style="bold green") if result.passed else Text("FAIL", "bold red")
        table.add_row(
            result.case,
            result.tillflow,
            result.reference,
            "—" if result.ratio is None else f"{result.ratio:.2f}×",
            result.target,
            verdict,
            result.notes,
        )
    console.print(table)


def _caption(meta: dict[str, Any]) -> str:
    load = meta["load_average"]
    return (
        f"{meta['cpus']} CPUs, Python {meta['python']}, SQLite {meta['sqlite']}, "
        f"files in {meta['directory']} ({meta['filesystem']}); "
        f"load average {load['before']:.2f} before, {load['after']:.2f} after; "
        f"{meta['seconds']:.0f} s in all."
    )


def write_json(path: Path, results: list[CaseResult], meta: dict[str, Any]) -> None:
    document = {"meta": meta, "cases": [asdict(result) for result in results]}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
