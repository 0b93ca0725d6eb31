"""Till sessions' cash-up: the ``tills`` processor behind the sale (``projection``), its rows
(``rows``: per session takings by tender, refunds, declines, expected and counted cash) and
their reads (``queries``: X and Z reports). The sessions themselves are opened and closed by
the sale side (:mod:`tillflow.shop.sale.tills`)."""
