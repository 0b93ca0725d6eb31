"""Receipts: a number per till for every checkout (a processor behind the sale), the
printable receipt of a checkout or a return (a view model built from Sale's events), and
its two renderings — 48-column text for an 80 mm thermal printer, and an HTML page."""
