"""Whose commits landed: a trigger on ``checkpoints`` records, for every checkpoint a batch
moves, the committing session's ``application_name`` (each worker gets its own through
``PGAPPNAME``) and the lease of that (group, lane) as the committing transaction sees it.

A batch committed under its fence locks its lease row ``FOR SHARE`` after checking that its
worker owns it unexpired, so the trigger then sees that owner, and an expiry after the
transaction's start (``now()``). A commit by a worker that had lost the lease (taken over,
or expired before the transaction began) is one a missing fence let land. The handover of
receipt numbering moves the checkpoint of the retired ``receipts`` processor, which no worker
leases: those commits are guarded by compare-and-set instead, and left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import psycopg

from tillflow.shop.receipts.handover import RETIRED

APP_PREFIX: Final = "tillflow-fault-worker-"

_DDL: Final = (
    """CREATE TABLE fault_commits (
        id         bigserial PRIMARY KEY,
        processor  text NOT NULL,
        lane       integer NOT NULL,
        position   bigint NOT NULL,
        committer  text NOT NULL,
        owner      text,
        epoch      bigint,
        expired    boolean
    )""",
    """CREATE FUNCTION fault_commit_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        lease record;
    BEGIN
        SELECT owner, epoch, expires_at <= now() AS expired INTO lease
            FROM leases WHERE processor = NEW.processor AND lane = NEW.lane;
        INSERT INTO fault_commits (processor, lane, position, committer, owner, epoch, expired)
            VALUES (NEW.processor, NEW.lane, NEW.position,
                    current_setting('application_name'), lease.owner, lease.epoch, lease.expired);
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER fault_commit_audit AFTER INSERT OR UPDATE OF position ON checkpoints
        FOR EACH ROW EXECUTE FUNCTION fault_commit_audit()""",
)


def install(url: str) -> None:
    """Start recording every checkpoint commit (on a database the store has created)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        for statement in _DDL:
            conn.execute(statement)


def application_name(worker: int) -> str:
    """The ``application_name`` (``PGAPPNAME``) of worker number ``worker``."""
    return f"{APP_PREFIX}{worker}"


@dataclass(frozen=True, slots=True)
class CommitAudit:
    commits: int
    """Checkpoint commits recorded."""
    unfenced: list[str]
    """Those made by a worker without the lease, described."""


def audit(url: str, pids: Mapping[int, int]) -> CommitAudit:
    """Every recorded commit against the lease it was made under; ``pids``: worker number
    → its process id (a lease's owner is ``host:pid:random``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT processor, lane, position, committer, owner, epoch, expired "
            "FROM fault_commits ORDER BY id"
        ).fetchall()
    unfenced = []
    for processor, lane, position, committer, owner, epoch, expired in rows:
        if processor == RETIRED:  # the handover's: see the module docstring
            continue
        number = committer.removeprefix(APP_PREFIX)
        pid = pids.get(int(number)) if number.isdigit() else None
        owner_pid = int(owner.split(":")[1]) if owner else None
        if pid is None or owner_pid != pid or expired:
            unfenced.append(
                f"{processor} lane {lane} → {position} committed by {committer} "
                f"(pid {pid}) under the lease of {owner} (epoch {epoch}"
                f"{', expired before the commit began' if expired else ''})"
            )
    return CommitAudit(len(rows), unfenced)
