"""Where a shop run's time goes: CPU per checkout by process and thread, and the SQL
statements each thread runs per checkout (counted on every connection of both processes).

::

    python -m bench.shop_profile [--checkouts N] [--processes 1|2] [--dir DIR]

Counting statements costs time (a Python callback per statement), so the rate shown here
is lower than the benchmark's. For the functions behind the CPU figures, sample the same
run with py-spy (``pip install py-spy``), threads and the tills' process included::

    py-spy record --threads --subprocesses --format raw -o shop.folded -- \\
        python -m bench.shop_profile --checkouts 40000 --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from bench.probes import CountingStore
from bench.shop import run_shop
from bench.shop_cases import cpu_summary, transactions_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shop_profile", description=__doc__)
    parser.add_argument("--checkouts", type=int, default=20_000)
    parser.add_argument("--processes", type=int, choices=(1, 2), default=2)
    parser.add_argument("--dir", type=Path, help="where the temporary database goes")
    arguments = parser.parse_args(argv)
    count = arguments.checkouts
    with tempfile.TemporaryDirectory(prefix="tillflow-profile-", dir=arguments.dir) as name:
        run = asyncio.run(
            run_shop(
                Path(name) / "profile.db",
                count,
                separate=arguments.processes == 2,
                store_type=CountingStore,
            )
        )
    print(f"{run.tills}: {run.status} {run.detail}")
    print(f"{run.rate:,.0f} checkouts/s (statements counted), {run.events / count:.2f} events")
    print(f"{transactions_summary(run)}; shop writer {run.writer}")
    print(cpu_summary(run))
    print(f"\nSQL statements per checkout ({count:,} checkouts):")
    for process, counts in run.statements.items():
        total = sum(counts.values())
        print(f"  {process}: {total / count:.2f} in all")
        for key, value in sorted(counts.items(), key=lambda item: -item[1]):
            if value / count >= 0.001:
                print(f"    {value / count:8.3f}  {key}")
    return 0 if run.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
