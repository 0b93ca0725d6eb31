"""The benchmark: the tillflow engine against plain SQLite, and the whole shop on SQLite,
measured in the same run.

::

    python -m bench [--quick] [--only engine|shop] [--repeats N] [--json PATH] [--dir DIR]

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

Every case uses durability "full" (``PRAGMA synchronous=FULL``, WAL) on both sides, a fresh
database in a temporary directory per measurement, and reports medians over the repeats.
Every shop run is verified against the truth and the consistent-cut audit; a wrong or
stalled run is reported as such, never timed.
Modules: :mod:`bench.workload` (events and their truth), :mod:`bench.raw` (the plain-SQLite
reference), :mod:`bench.engine` (the tillflow side), :mod:`bench.limits` (memory),
:mod:`bench.cases` (repeats, medians, targets), :mod:`bench.shop` (the shop's runs),
:mod:`bench.shop_cases` (its cases), :mod:`bench.probes` (CPU per thread, statements),
:mod:`bench.report` (table and JSON). ``python -m bench.shop_profile`` counts the SQL
statements and CPU a checkout costs, thread by thread.
"""
