"""``python -m bench``: run every case (or one group, ``--only engine|shop``), print the
table, optionally write JSON."""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from bench.cases import CASES, FULL, QUICK, Context, Sizes
from bench.report import CaseResult, render, write_json
from bench.shop_cases import SHOP_CASES

MIN_REPEATS = 3

Case = Callable[[Context], CaseResult | list[CaseResult]]
GROUPS: dict[str, Sequence[Case]] = {"engine": CASES, "shop": SHOP_CASES}
"""The engine against plain SQLite (cases 1–4), the whole shop (cases 5–8)."""


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "The tillflow engine against plain SQLite, and the whole shop on SQLite, "
            "measured in the same run."
        ),
    )
    parser.add_argument(
        "--only",
        choices=sorted(GROUPS),
        action="append",
        help="run only this group of cases (repeatable; default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument(
        "--repeats", type=int, default=MIN_REPEATS, help="runs per case (medians; default 3)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument(
        "--dir", type=Path, metavar="DIR", help="where the temporary databases go (a disk)"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every size (smoke tests: 0.1)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if any case fails")
    arguments = parser.parse_args(argv)
    if arguments.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be at least {MIN_REPEATS}")
    if arguments.dir is not None and not arguments.dir.is_dir():
        parser.error(f"--dir {arguments.dir} is not a directory")
    if arguments.scale <= 0:
        parser.error("--scale must be positive")
    return arguments


def _filesystem(directory: Path) -> str:
    """The type of the filesystem holding ``directory`` (fsync on tmpfs proves nothing)."""
    resolved = str(directory.resolve())
    best = ("", "unknown")
    for partition in psutil.disk_partitions(all=True):
        mount = partition.mountpoint
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best[0]):
            best = (mount, partition.fstype)
    return best[1]


def _run(case: Case, context: Context) -> list[CaseResult]:
    """Run one case (one row or several); an exception becomes a failed row (the other
    cases still run)."""
    try:
        result = case(context)
    except Exception as error:
        return [
            CaseResult(
                case=case.__name__.replace("_", " "),
                tillflow="ERROR",
                reference="—",
                ratio=None,
                target="—",
                passed=False,
                notes=f"{type(error).__name__}: {error}",
            )
        ]
    return result if isinstance(result, list) else [result]


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    sizes: Sizes = (QUICK if arguments.quick else FULL).scaled(arguments.scale)
    directory: Path | None = arguments.dir
    where = directory or Path(tempfile.gettempdir())
    console = Console(width=None if sys.stdout.isatty() else 200)
    errors = Console(stderr=True)

    def progress(message: str) -> None:
        errors.print(f"[dim]… {message}[/dim]")

    context = Context(sizes, arguments.repeats, directory, progress)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    groups = arguments.only or list(GROUPS)
    results = [
        row
        for group, cases in GROUPS.items()
        if group in groups
        for case in cases
        for row in _run(case, context)
    ]
    meta: dict[str, Any] = {
        "mode": "quick" if arguments.quick else "full",
        "groups": [group for group in GROUPS if group in groups],
        "repeats": arguments.repeats,
        "scale": arguments.scale,
        "sizes": asdict(sizes),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "directory": str(where),
        "filesystem": _filesystem(where),
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "seconds": time.perf_counter() - started,
    }
    render(console, results, meta)
    if arguments.json is not None:
        write_json(arguments.json, results, meta)
    return 1 if arguments.check and not all(result.passed for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
