"""The engine benchmark: tillflow against plain SQLite, measured in the same run.

::

    python -m bench [--quick] [--repeats N] [--json PATH] [--dir DIR]

    case                      tillflow                         reference (same run)
    1 batched appends         SqliteEventStore.append(1000)    sqlite3 executemany(1000)/txn
    2 group commit            64 asyncio writers, 1 event each sqlite3, one row per commit
    3 chain with barriers     tally → bulk → audit, end to end sqlite3 batched insert rate (1)
    4 memory flat             the chain over millions of events RSS at the start

Every case uses durability "full" (``PRAGMA synchronous=FULL``, WAL) on both sides, a fresh
database in a temporary directory per measurement, and reports medians over the repeats.
Modules: :mod:`bench.workload` (events and their truth), :mod:`bench.raw` (the plain-SQLite
reference), :mod:`bench.engine` (the tillflow side), :mod:`bench.limits` (memory),
:mod:`bench.cases` (repeats, medians, targets), :mod:`bench.report` (table and JSON).
"""
