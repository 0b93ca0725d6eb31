"""The correctness soak: the fault runs of the CI tests (tests/faults/), by the thousand.

    python -m bench.soak postgres --faults 1000   # ≥ 3 workers: SIGKILL, SIGSTOP past the
                                                  # lease, add, remove; database restarts
    python -m bench.soak sqlite --kills 1000      # the SQLite shop SIGKILLed at random

Each prints its progress, then the faults survived and the verdict (the report against the
truth of the sale log, every checkout taken off the shelf once, no commit landed without
its lease), and exits 1 if anything was wrong. Not a benchmark: run it beside anything.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.faults.postgres import PostgresFaultRun, PostgresPlan
from tests.faults.sqlite import SqliteKillRun, SqlitePlan


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    stores = parser.add_subparsers(dest="store", required=True)
    postgres = stores.add_parser("postgres", help="the shop on PostgreSQL, ≥ 3 workers")
    postgres.add_argument("--faults", type=int, default=1000)
    postgres.add_argument("--restarts", type=int, default=10, help="database restarts")
    postgres.add_argument("--ttl", type=float, default=1.0, help="the workers' lease TTL")
    postgres.add_argument("--rate", type=float, default=100.0, help="checkouts/s asked")
    postgres.add_argument(
        "--audit-every", type=int, default=10, help="faults between consistent-cut audits"
    )
    sqlite = stores.add_parser("sqlite", help="the shop on one SQLite file")
    sqlite.add_argument("--kills", type=int, default=1000)
    for each in (postgres, sqlite):
        each.add_argument("--seed", type=int, default=1)
        each.add_argument(
            "--budget", type=float, default=0.0, help="seconds of faults at most (0: no limit)"
        )
    arguments = parser.parse_args(argv)
    for name, least in (
        ("faults", 1),
        ("kills", 1),
        ("restarts", 0),
        ("audit_every", 1),
        ("budget", 0),
    ):
        if getattr(arguments, name, least) < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}")
    return arguments


def soak(arguments: argparse.Namespace, workdir: Path) -> tuple[str, list[str]]:
    """Run what ``arguments`` ask for: its summary and whatever was wrong."""
    if arguments.store == "postgres":
        plan = PostgresPlan(
            arguments.faults,
            arguments.seed,
            restarts=arguments.restarts,
            ttl=arguments.ttl,
            rate=arguments.rate,
            audit_every=arguments.audit_every,
            budget=arguments.budget,
        )
        say(f"soak: {plan}")
        outcome = PostgresFaultRun(plan, workdir, say).run()
        return outcome.summary(), outcome.violations + outcome.unfenced
    sqlite = SqlitePlan(arguments.kills, arguments.seed, budget=arguments.budget)
    say(f"soak: {sqlite}")
    killed = SqliteKillRun(sqlite, workdir, say).run()
    return killed.summary(), killed.violations


def main(argv: list[str]) -> int:
    arguments = parse(argv)
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # the restarts, expected
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as Ctrl-C does: clean up
    workdir = Path(tempfile.mkdtemp(prefix="tillflow-soak-"))
    try:
        summary, problems = soak(arguments, workdir)
    except BaseException:
        say(f"the workers' logs are kept in {workdir}")
        raise
    if problems:
        say(f"the workers' logs are kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    for problem in problems[:20]:
        say(f"WRONG: {problem}")
    say(summary)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
