"""What a running tillflow service needs around the shop: configuration and wiring.

::

    settings.py        TILLFLOW_* configuration, read once at start-up
    bootstrap.py       the composition root: stores chosen and wired
    access_tokens.py   bearer tokens of the HTTP API, kept as events
    receipt_tokens.py  receipts as opaque tokens for ?wait_for=
    collector.py       the garbage collector's setting for tillflow's own processes
    backups.py         online backups of an SQLite store (restores.py: putting one back)

It imports the shop and the engine; ``http`` and ``cli`` import it.
"""
