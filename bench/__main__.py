"""``python -m bench``: run every case (or some groups, ``--only engine|shop|contenders|
scaling|http|stores|postgres|blips``), print the tables, optionally write JSON and the Markdown
section of ``docs/BENCHMARKS.md``."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from bench.blips import BLIP_CASES
from bench.cases import CASES, FULL, QUICK, Context, Sizes
from bench.contenders import CONTENDER_CASES, SCALING_CASES
from bench.failover import FAILOVER_CASES
from bench.http_load import HTTP_CASES
from bench.postgres_blips import POSTGRES_BLIP_CASES
from bench.postgres_lanes import POSTGRES_CASES
from bench.postgres_shop import POSTGRES_SHOP_CASES
from bench.rebuilds import REBUILD_CASES
from bench.report import CaseResult, cases_grid, render, write_json, write_markdown
from bench.shop_cases import SHOP_CASES
from bench.stores import STORE_CASES

MIN_REPEATS = 3

Case = Callable[[Context], CaseResult | list[CaseResult]]
GROUPS: dict[str, Sequence[Case]] = {
    "engine": CASES,
    "shop": SHOP_CASES,
    "contenders": CONTENDER_CASES,
    "scaling": SCALING_CASES,
    "http": HTTP_CASES,
    "stores": STORE_CASES,
    "postgres": [*POSTGRES_CASES, *POSTGRES_SHOP_CASES, *FAILOVER_CASES],
    "blips": [*BLIP_CASES, *POSTGRES_BLIP_CASES],
    "rebuilds": REBUILD_CASES,
}
"""The engine against plain SQLite (cases 1–4), the whole shop (cases 5–8), the shop
against the ``eventsourcing`` library and the machine's limits (9–10), scaling (11),
checkouts through a real ``tillflow serve`` over HTTP (12–13), the memory store against
SQLite and its bytes per event (14–15), appends on PostgreSQL by lane count (16), the shop on
PostgreSQL against the peer there (17), failover of leased workers: SIGKILL (18) and SIGTERM
(19), processors moving again after an SQLite file's write lock is let go (20);
a blue/green rebuild of the report against the live pipeline (21), processors moving again
after a PostgreSQL server's crash and restart (22)."""


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "The tillflow engine against plain SQLite, the whole shop on SQLite, and the "
            "point-of-sale workload against the eventsourcing library and this machine's "
            "limits, measured in the same run."
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
        "--markdown",
        type=Path,
        metavar="PATH",
        help="also write the tables into PATH's generated section (docs/BENCHMARKS.md)",
    )
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


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
    }


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
    load_before = list(os.getloadavg())
    started_at = datetime.now().astimezone()
    started = time.perf_counter()
    groups = arguments.only or list(GROUPS)
    results = [
        row
        for group, cases in GROUPS.items()
        if group in groups
        for case in cases
        for row in _run(case, context)
    ]
    load_after = list(os.getloadavg())
    meta: dict[str, Any] = {
        "started": started_at.isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "mode": "quick" if arguments.quick else "full",
        "groups": [group for group in GROUPS if group in groups],
        "repeats": arguments.repeats,
        "scale": arguments.scale,
        "sizes": asdict(sizes),
        "cpus": os.cpu_count(),
        "machine": _machine(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "versions": {
            "Python": platform.python_version(),
            "SQLite": sqlite3.sqlite_version,
            "tillflow": _version("tillflow"),
            "eventsourcing": _version("eventsourcing"),
            "msgspec": _version("msgspec"),
        },
        "directory": str(where),
        "filesystem": _filesystem(where),
        "load_average": {
            "before": load_before[0],
            "after": load_after[0],
            "before_all": load_before,
            "after_all": load_after,
        },
        "seconds": time.perf_counter() - started,
    }
    grids = [cases_grid(results, meta), *context.tables.values()]
    render(console, grids)
    if arguments.json is not None:
        write_json(arguments.json, results, meta, context.tables_data)
    if arguments.markdown is not None:
        write_markdown(arguments.markdown, grids, meta)
    return 1 if arguments.check and not all(result.passed for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
