"""Crash safety on a real SQLite file: SIGKILL a working process many times, then audit.

A child process (``crash_child.py``) appends deposits and runs a chain of three processors
(ledger → totals → audit) over the same file, concurrently. The test kills it with SIGKILL
after seeded random delays (mid-append, mid-batch, between a commit and its acknowledgement,
during start-up...), restarts it where the acknowledgements say it got to (re-appending a few
already-acknowledged deposits, which must return their original receipts), and finally lets
it finish and drain. Then it checks the file against the truth computed here, independently
of the processors: nothing acknowledged is lost or moved, every deposit is booked exactly
once, every view row is right, every audit counter is 1 and every checkpoint is at the head.

The negative control runs the same loop with a deliberately broken ``totals`` processor
(one view row committed outside the batch's transaction) and shows the same audit catches it.
Set ``TILLFLOW_CRASH_SEED`` to explore other seeds.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec
import pytest

from tillflow.engine import (
    RecordedEvent,
    SqliteEventStore,
    derived_event_id,
    format_id,
    id_from_key,
)

CHILD = Path(__file__).with_name("crash_child.py")
SEED = int(os.environ.get("TILLFLOW_CRASH_SEED", "20240611"))
ACCOUNTS = 7  # as in crash_child.py
PROCESSORS = ("ledger", "totals", "audit")
READY_TIMEOUT = 30.0
FINISH_TIMEOUT = 60.0

Acks = dict[int, set[tuple[int, int]]]
"""seq → every (position, version) an append of it was acknowledged with."""


def expected_amount(seq: int) -> int:
    return 1 + (seq * 7919) % 97


@dataclass
class ChildRun:
    """What one child process did, as far as the parent can tell."""

    start: int
    stop: int
    lines: list[str] = field(default_factory=list)
    returncode: int | None = None
    killed_by_parent: bool = False
    stderr: str = ""
    behind: dict[str, int] | None = None
    """After a kill: per processor, how far its checkpoint was behind the head."""
    unacknowledged: int = 0
    """After a kill: deposits committed whose acknowledgement never came."""

    @property
    def mid_append(self) -> bool:
        """Killed after start-up, before it had appended its whole range."""
        return "ready" in self.lines and "appended" not in self.lines

    def describe(self) -> str:
        acks = sum(1 for line in self.lines if line.startswith("ack "))
        how = "killed" if self.killed_by_parent else f"exit {self.returncode}"
        return (
            f"seqs [{self.start}, {self.stop}): {acks} acks, {how}, behind {self.behind}, "
            f"{self.unacknowledged} committed but not acknowledged"
        )


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        if line.endswith("\n"):  # a line cut short by the kill was never acknowledged
            lines.put(line.rstrip("\n"))
    lines.put(None)


def run_child(
    db: Path,
    workdir: Path,
    start: int,
    stop: int,
    *,
    kill_delay: float | None,
    before_ready: bool = False,
    flags: tuple[str, ...] = (),
) -> ChildRun:
    """Run the child over ``[start, stop)``. With ``kill_delay``, SIGKILL it that many seconds
    after it reported ready (after it was spawned if ``before_ready``), unless it died
    first; without, let it finish (``--finish``) and wait for it to exit."""
    run = ChildRun(start, stop)
    command = [sys.executable, str(CHILD), str(db), "--start", str(start), "--stop", str(stop)]
    command += flags if kill_delay is not None else (*flags, "--finish")
    lines: queue.Queue[str | None] = queue.Queue()
    error_path = workdir / "child-stderr.txt"
    with (
        error_path.open("w+", encoding="utf-8") as errors,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=workdir
        ) as child,
    ):
        assert child.stdout is not None
        reader = threading.Thread(target=_pump, args=(child.stdout, lines), daemon=True)
        reader.start()
        try:
            if kill_delay is None:
                child.wait(timeout=FINISH_TIMEOUT)
            else:
                if not before_ready:
                    _wait_for_ready(lines, run)
                try:
                    child.wait(timeout=kill_delay)  # the random delay before the kill
                except subprocess.TimeoutExpired:
                    os.kill(child.pid, signal.SIGKILL)
                    run.killed_by_parent = True
                    child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            reader.join(timeout=10)
        run.returncode = child.returncode
        errors.seek(0)
        run.stderr = errors.read()
    while (line := lines.get_nowait()) is not None:
        run.lines.append(line)
    return run


def _wait_for_ready(lines: queue.Queue[str | None], run: ChildRun) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise AssertionError(f"child not ready within {READY_TIMEOUT}s") from None
        if line is None:
            lines.put(None)  # keep the end marker for the caller
            return  # died before it was ready (e.g. killed itself): nothing to wait for
        run.lines.append(line)
        if line == "ready":
            return


def snapshot(db: Path) -> tuple[dict[str, int], int] | None:
    """Per processor, head minus checkpoint, and how many deposits are recorded; read
    without writing (``None``: no store yet)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as raw:
            head = raw.execute("SELECT max(position) FROM events").fetchone()[0] or 0
            checkpoints = dict(raw.execute("SELECT processor, position FROM checkpoints"))
            deposits = raw.execute(
                "SELECT count(*) FROM events WHERE type = 'Deposited'"
            ).fetchone()[0]
    except sqlite3.OperationalError:
        return None
    return {name: head - checkpoints.get(name, 0) for name in PROCESSORS}, deposits


def record_acks(run: ChildRun, acks: Acks) -> None:
    for line in run.lines:
        if line.startswith("ack "):
            _, seq, position, version = line.split()
            acks.setdefault(int(seq), set()).add((int(position), int(version)))


def restart_point(acks: Acks, rng: random.Random) -> int:
    """Where the next child starts: the first unacknowledged deposit, minus a few
    acknowledged ones, appended again to check they keep their original receipts."""
    first_missing = 0
    while first_missing in acks:
        first_missing += 1
    return max(0, first_missing - rng.randint(0, 4))


@dataclass
class CrashLoop:
    """The kill-and-restart loop, and its log for failure messages."""

    db: Path
    workdir: Path
    rng: random.Random
    flags: tuple[str, ...] = ()
    acks: Acks = field(default_factory=dict)
    history: list[ChildRun] = field(default_factory=list)
    kills: int = 0

    def run_once(
        self, target: int, chunk: int, most_delay: float, extra: tuple[str, ...] = ()
    ) -> ChildRun:
        """One child over the next ``1..chunk`` deposits, SIGKILLed after ``0..most_delay``
        seconds (sometimes before it even reported ready)."""
        start = restart_point(self.acks, self.rng)
        stop = min(target, start + self.rng.randint(1, chunk))
        before_ready = self.rng.random() < 0.15
        delay = self.rng.uniform(0.0, 0.3 if before_ready else most_delay)
        run = run_child(
            self.db,
            self.workdir,
            start,
            stop,
            kill_delay=delay,
            before_ready=before_ready,
            flags=(*self.flags, *extra),
        )
        self._keep(run)
        found = snapshot(self.db)
        if found is not None:
            run.behind = found[0]
            run.unacknowledged = found[1] - len(self.acks)
        if run.returncode == -signal.SIGKILL:
            self.kills += 1
        else:
            raise AssertionError(f"child ended without being killed: {self.report(run)}")
        return run

    def finish(self, target: int) -> ChildRun:
        start = restart_point(self.acks, self.rng)
        run = run_child(self.db, self.workdir, start, target, kill_delay=None, flags=self.flags)
        self._keep(run)
        assert run.returncode == 0 and run.lines[-1:] == ["drained"], self.report(run)
        return run

    def _keep(self, run: ChildRun) -> None:
        self.history.append(run)
        record_acks(run, self.acks)
        assert not run.stderr, self.report(run)

    def report(self, run: ChildRun | None = None) -> str:
        runs = "\n".join(f"  run {n}: {r.describe()}" for n, r in enumerate(self.history))
        last = f"\nlast child's stderr:\n{run.stderr}" if run is not None else ""
        return f"seed {SEED}, {self.kills} kills\n{runs}{last}"


# -- the audit -----------------------------------------------------------------------------


def find_violations(db: Path, target: int, acks: Acks) -> list[str]:
    """Everything wrong with the file, judged against the truth computed from the recorded
    deposits (and from the deposits' definition: seq → account, amount)."""
    violations: list[str] = []
    with contextlib.closing(sqlite3.connect(db)) as raw:
        integrity = raw.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            violations.append(f"integrity_check: {integrity}")
    with SqliteEventStore(db) as store:
        head = store.head(0)
        events = list(store.iter_all(0))
        checkpoints = {name: store.checkpoint(name, 0) for name in PROCESSORS}
        views = {
            view: {key: msgspec.json.decode(value) for key, value in store.view_rows(view)}
            for view in ("balance", "totals", "audit")
        }
    deposits, booked = _check_log(events, head, violations)
    lost = sorted(set(range(target)) - set(deposits))
    if lost:
        violations.append(f"{len(lost)} deposits never recorded, e.g. {lost[:10]}")
    for seq, receipts in sorted(acks.items()):
        recorded = deposits.get(seq)
        if recorded is None:
            violations.append(f"acknowledged deposit {seq} lost")
        elif receipts != {(recorded.position, recorded.version)}:
            violations.append(
                f"deposit {seq} acknowledged at (position, version) {sorted(receipts)}, "
                f"recorded at {(recorded.position, recorded.version)}"
            )
    _check_bookings(deposits, booked, violations)
    _check_views(views, deposits, events, violations)
    for name, position in checkpoints.items():
        if position != head:
            violations.append(f"checkpoint of {name} at {position}, head at {head}")
    return violations


def _check_log(
    events: list[RecordedEvent], head: int, violations: list[str]
) -> tuple[dict[int, RecordedEvent], dict[bytes, list[RecordedEvent]]]:
    """Dense positions and versions, well-formed deposits; the deposits by seq and the
    Booked events by the event that caused them."""
    if [event.position for event in events] != list(range(1, head + 1)):
        violations.append(f"positions are not dense 1..{head}")
    versions: defaultdict[str, list[int]] = defaultdict(list)
    for event in events:
        versions[event.stream].append(event.version)
    for stream, seen in versions.items():
        if seen != list(range(1, len(seen) + 1)):
            violations.append(f"stream {stream} has versions {seen[:10]}…, not 1..{len(seen)}")
    deposits: dict[int, RecordedEvent] = {}
    booked: defaultdict[bytes, list[RecordedEvent]] = defaultdict(list)
    for event in events:
        if event.type == "Deposited":
            seq = event.payload()["seq"]
            account = seq % ACCOUNTS
            expected = {"account": account, "amount": expected_amount(seq), "seq": seq}
            if seq in deposits:
                violations.append(f"deposit {seq} recorded twice")
            if event.id != id_from_key("deposit", str(seq)) or event.stream != f"account-{account}":
                violations.append(f"deposit {seq} recorded with the wrong id or stream")
            if event.payload() != expected:
                violations.append(f"deposit {seq} recorded as {event.payload()}")
            deposits[seq] = event
        elif event.type == "Booked" and event.causation_id is not None:
            booked[event.causation_id].append(event)
        else:
            violations.append(f"unexpected event {event.describe()}")
    return deposits, booked


def _check_bookings(
    deposits: dict[int, RecordedEvent],
    booked: dict[bytes, list[RecordedEvent]],
    violations: list[str],
) -> None:
    """Exactly one Booked per deposit, with the deposit's data and its derived id."""
    ids = {deposit.id for deposit in deposits.values()}
    for cause in booked.keys() - ids:
        violations.append(f"Booked events caused by an unknown event {format_id(cause)}")
    for seq, deposit in sorted(deposits.items()):
        bookings = booked.get(deposit.id, [])
        if len(bookings) != 1:
            violations.append(f"deposit {seq} booked {len(bookings)} times")
            continue
        booking = bookings[0]
        if (
            booking.id != derived_event_id("ledger", deposit.id, 0)
            or booking.stream != f"booking-{seq % ACCOUNTS}"
            or booking.payload() != deposit.payload()
        ):
            violations.append(f"deposit {seq} booked wrongly: {booking.describe()}")


def _check_views(
    views: dict[str, dict[str, Any]],
    deposits: dict[int, RecordedEvent],
    events: list[RecordedEvent],
    violations: list[str],
) -> None:
    """Every row of every view equals the truth computed from the recorded deposits."""
    balances: Counter[str] = Counter()
    for seq, deposit in deposits.items():
        balances[str(seq % ACCOUNTS)] += deposit.payload()["amount"]
    truth: dict[str, dict[str, Any]] = {
        "balance": dict(balances),
        "totals": {
            "all": {"count": len(deposits), "sum": sum(balances.values())},
            **{f"account-{account}": amount for account, amount in balances.items()},
        },
        "audit": {format_id(event.id): 1 for event in events},
    }
    for view, rows in truth.items():
        wrong = [
            f"{view}[{key}] = {views[view].get(key)}, truth {rows.get(key)}"
            for key in sorted(rows.keys() | views[view].keys())
            if views[view].get(key) != rows.get(key)
        ]
        if wrong:
            violations.append(f"{len(wrong)} wrong rows in view {view}: " + "; ".join(wrong[:5]))


# -- the tests -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkilled_at_random_points_nothing_acknowledged_is_lost_nothing_applied_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, wanted_kills, budget = 14_000, 40, 50.0
    loop = CrashLoop(tmp_path / "crash.db", tmp_path, random.Random(SEED))
    started = time.monotonic()
    while loop.kills < wanted_kills and time.monotonic() - started < budget:
        loop.run_once(target, chunk=1000, most_delay=0.8)
    assert loop.kills >= 15, loop.report()
    # The kills must have hit the work, not an idle process.
    mid_append = sum(run.mid_append for run in loop.history)
    mid_processing = sum(any((run.behind or {}).values()) for run in loop.history)
    unacknowledged = sum(run.unacknowledged > 0 for run in loop.history)
    assert mid_append >= 5 and mid_processing >= 5, loop.report()
    loop.finish(target)
    elapsed = time.monotonic() - started

    violations = find_violations(loop.db, target, loop.acks)
    assert violations == [], loop.report()
    reappended = sum(1 for run in loop.history for line in run.lines if line.startswith("ack "))
    with capsys.disabled():
        print(
            f"\ncrash safety: survived {loop.kills} kills (seed {SEED}) in {elapsed:.1f}s "
            f"({mid_append} mid-append, {mid_processing} with processors behind, "
            f"{unacknowledged} between a commit and its acknowledgement); "
            f"{len(loop.acks)} deposits acknowledged ({reappended - len(loop.acks)} "
            f"appended again), {target} deposits and {target} bookings checked"
        )


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_audit_catches_a_view_committed_apart_from_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Negative control: the broken ``totals`` writes its "all" row in a transaction of its
    own. Killed between that write and the checkpoint's commit, it applies the same booking
    twice after the restart; the audit must say so, and say nothing else."""
    target, runs = 1500, 8
    loop = CrashLoop(tmp_path / "faulty.db", tmp_path, random.Random(SEED), flags=("--faulty",))
    self_kills = 0
    for _ in range(runs):
        self_kill = ("--self-kill-after", str(loop.rng.randint(1, 30)))
        run = loop.run_once(target, chunk=400, most_delay=1.5, extra=self_kill)
        self_kills += not run.killed_by_parent
    assert self_kills >= 1, loop.report()
    loop.finish(target)

    violations = find_violations(loop.db, target, loop.acks)
    assert violations, f"the audit missed the doubled effects\n{loop.report()}"
    assert all(v.startswith("1 wrong rows in view totals: totals[all]") for v in violations), (
        violations
    )
    with SqliteEventStore(loop.db) as store:
        counted = msgspec.json.decode(store.read_view("totals", "all") or b"null")["count"]
    assert counted > target  # applied twice, not lost
    with capsys.disabled():
        print(
            f"\ncrash safety, negative control: {loop.kills} kills ({self_kills} between a "
            f"non-atomic view write and its checkpoint) → {counted - target} bookings "
            f"counted twice, caught: {violations[0][:100]}"
        )
