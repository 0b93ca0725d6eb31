"""The shop: three bounded contexts over one event log, built on :mod:`tillflow.engine`.

::

    sale/        catalog and tills: Checkout ─► CheckedOut, ReturnItems ─► ItemsReturned
    inventory/   the source of truth for stock: its processor turns CheckedOut into
                 ProductTaken (and StockShortfall, the apology); deliveries and counts
    reporting/   the report, after=["inventory"]: rows true as of one Inventory version
    assembly.py  the three contexts wired over one store (Shop)
    errors.py    the shop's refusals, each naming what was wrong
    validation.py  checks shared by the commands

Dependencies point inward: the shop imports the engine and nothing of ``service``,
``demos``, ``http`` or ``cli``.
"""
