"""Sale's upcasters: the shapes its events were recorded in before, read as today's
(:mod:`tillflow.engine.upcasting`). Recorded events are never rewritten.

``CheckedOut``

* **v1**: recorded before events carried a schema version. The first releases wrote no
  tenders and no tax (a line: product, name, quantity, unit price, line total); later ones
  added the tenders, then each line's tax, still stamped 1.
* **v2** (current): every checkout says how it was paid and each line's tax.

v1 → v2 fills in only what is missing, so it holds for all of those shapes: no tenders
means the exact total in cash (what such a sale was taken as; no change); a line without
a tax rate was sold before the shop kept VAT, so it is taxed at rate ``""`` of 0 basis
points by the shop's one rule (:func:`~tillflow.shop.sale.vat.tax_in`): tax 0, net = the
line total. The product's rate is not in such an event, and the rate table at the time of
reading is not what the sale was taxed at (it was not taxed); a rule that read it would
also give a different answer after each rate change, and the report would depend on when
it was built.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tillflow.engine import Upcasters
from tillflow.shop.sale.tenders import settle
from tillflow.shop.sale.vat import BEFORE_VAT, tax_in

SALE_UPCASTERS: Final = Upcasters()

CHECKED_OUT_VERSION: Final = 2
"""The schema version ``CheckedOut`` is recorded at (its upcasters lead here)."""


@SALE_UPCASTERS.register("CheckedOut", 1)
def checked_out_v2(data: dict[str, Any]) -> dict[str, Any]:
    """A v1 checkout as v2: the tenders and each line's tax filled in where missing."""
    if "tenders" not in data:
        paid, change = settle(data["total"], None)
        data["tenders"] = msgspec.to_builtins(paid)
        data["change"] = change
    for line in data["lines"]:
        if "tax_rate" not in line:
            tax = tax_in(line["line_total"], 0)
            line.update(tax_rate=BEFORE_VAT, basis_points=0, tax=tax, net=line["line_total"] - tax)
    return data
