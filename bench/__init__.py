"""The benchmark: the tillflow engine against plain SQLite, the whole shop on SQLite, and the
point-of-sale workload against the Python ``eventsourcing`` library and this machine's
limits, measured in the same run.

::

    python -m bench [--quick] [--only engine|shop|contenders|scaling] [--repeats N]
                    [--json PATH] [--markdown docs/BENCHMARKS.md] [--dir DIR]

    case                      tillflow                         reference (same run)
    1 batched appends         SqliteEventStore.append(1000)    sqlite3 executemany(1000)/txn
    2 group commit            64 asyncio writers, 1 event each sqlite3, one row per commit
    3 chain with barriers     tally → bulk → audit, end to end sqlite3 batched insert rate (1)
    4 memory flat             the chain over millions of events RSS at the start
    5 shop throughput         checkouts → inventory → report,  sqlite3 batched insert rate (1)
                              tills in 1 process and in 2
    6 shop latency            open loop, 1,000 checkouts/s     —
    7 shop memory             the shop's RSS after 1M          RSS at the start
    8 shop flat cost          checkouts/s per 100k segment     the first segment
    9 vs eventsourcing        the shop on SQLite               eventsourcing on SQLite (≥ 100×)
    10 vs the machine         the shop on the memory store     bare asyncio pipeline (≥ 0.5×)
    11 scaling                10k → 100k → 1M checkouts        the smallest run (flat cost)

Cases 9–11 also print their own tables: every contender of the point-of-sale workload
(tillflow memory and SQLite; eventsourcing POPO and SQLite under its SingleThreadedRunner,
MultiThreadedRunner and NewMultiThreadedRunner; a bare Python loop, a bare asyncio
pipeline, raw SQLite inserts) with checkouts/s, p50/p99 checkout-to-report latency, peak
RSS, correctness and tillflow's ratios to the peer and to the limits; and the scaling runs.

Every case uses durability "full" (``PRAGMA synchronous=FULL``, WAL) on both sides, a fresh
database in a temporary directory per measurement, and reports medians over the repeats.
Every shop run and every contender's run is verified against the truth; a wrong or
stalled run is reported as such, never timed.
Modules: :mod:`bench.workload` (events and their truth), :mod:`bench.raw` (the plain-SQLite
reference), :mod:`bench.engine` (the tillflow side), :mod:`bench.limits` (memory),
:mod:`bench.cases` (repeats, medians, targets), :mod:`bench.shop` (the shop's runs),
:mod:`bench.shop_cases` (its cases), :mod:`bench.pos` (the point-of-sale workload and its
one truth), :mod:`bench.peer` (the same on ``eventsourcing``, the ``bench`` extra),
:mod:`bench.machine` (bare loop and asyncio pipeline), :mod:`bench.contenders` (cases 9–11,
each run in a fresh process), :mod:`bench.probes` (CPU per thread, statements),
:mod:`bench.report` (tables, JSON, Markdown). ``python -m bench.shop_profile`` counts the
SQL statements and CPU a checkout costs, thread by thread.
"""
