"""Inventory: the source of truth for stock, one stream ``stock-<product>`` per product.

Its processor handles ``CheckedOut`` and ``ItemsReturned`` (``ProductTaken``,
``ProductReturned``, and ``StockShortfall`` when a sale took stock that was not there); its
service takes deliveries and counts (``StockReceived``, ``StockCounted``) and records
``ShortfallResolved`` when one of them clears an open shortfall. Every event carries the
stock and the units short after it.
"""
