"""Reporting: the report projection (``after=["inventory"]``) and its reads.

It never does stock arithmetic: each product's row moves through that product's Inventory
stream in version order, so every figure of a row is true as of one Inventory version.
``queries`` reads rows with their freshness and waits for receipts; ``truth`` and ``audit``
check a report against the commands issued and against Inventory's streams; ``designs``
holds the alternative designs the simulator compares (two of them negative controls).
"""
