"""The shop's refusals: every one names what was wrong. None of them writes anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tillflow.engine.errors import TillflowError, shown


class InvalidField(TillflowError):
    """A command field with a value the shop cannot accept."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        short = value if not isinstance(value, str) or len(value) <= 60 else value[:57] + "..."
        super().__init__(f"{field}={shown(short)}: {reason}")


class UnknownProduct(TillflowError):
    """A product id the catalog does not know."""

    def __init__(self, product_id: str, field: str = "product_id") -> None:
        self.product_id = product_id
        self.field = field
        super().__init__(f"{field}={product_id!r}: no such product in the catalog")


class ProductExists(TillflowError):
    """``AddProduct`` for a product id the catalog already has."""

    def __init__(self, product_id: str) -> None:
        self.product_id = product_id
        super().__init__(f"product_id={product_id!r}: the product is already in the catalog")


class ProductDiscontinued(TillflowError):
    """A checkout or change of a product that was discontinued."""

    def __init__(self, product_id: str, field: str = "product_id") -> None:
        self.product_id = product_id
        self.field = field
        super().__init__(f"{field}={product_id!r}: the product is discontinued")


class UnknownCheckout(TillflowError):
    """A return against a checkout id that was never checked out."""

    def __init__(self, checkout_id: str) -> None:
        self.checkout_id = checkout_id
        super().__init__(f"checkout_id={checkout_id!r}: no such checkout")


class CheckoutConflict(TillflowError):
    """A checkout (or return) id reused with different content: ``field`` says what differs."""

    def __init__(self, key_name: str, key: str, field: str) -> None:
        self.key_name = key_name
        self.key = key
        self.field = field
        super().__init__(
            f"{key_name}={key!r} was already used with a different {field}; "
            "retry with the same content or use a new id"
        )


class ReturnExceedsPurchase(TillflowError):
    """A return of more units than the checkout bought, net of earlier returns."""

    def __init__(self, checkout_id: str, product_id: str, requested: int, returnable: int) -> None:
        self.checkout_id = checkout_id
        self.product_id = product_id
        self.requested = requested
        self.returnable = returnable
        super().__init__(
            f"lines[product_id={product_id!r}].quantity={requested}: checkout {checkout_id!r} "
            f"has {returnable} unit(s) of it left to return"
        )


class UnknownGtin(TillflowError):
    """A GTIN (barcode) that no product in the catalog carries."""

    def __init__(self, gtin: str, field: str = "gtin") -> None:
        self.gtin = gtin
        self.field = field
        super().__init__(f"{field}={gtin!r}: no product in the catalog carries this GTIN")


class DuplicateGtin(TillflowError):
    """A GTIN given to a product while another product carries it."""

    def __init__(self, gtin: str, held_by: str, field: str = "gtin") -> None:
        self.gtin = gtin
        self.held_by = held_by
        self.field = field
        super().__init__(f"{field}={gtin!r}: product {held_by!r} already carries this GTIN")


@dataclass(frozen=True)
class RowProblem:
    """One bad field of a row of a catalog import: ``line`` is the file's line number."""

    line: int
    field: str
    value: object
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}={shown(self.value)}: {self.reason}"


class CatalogImportRefused(TillflowError):
    """A catalog import with bad rows: every one of them, in file order. Nothing written."""

    def __init__(self, problems: Sequence[RowProblem]) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(str(problem) for problem in self.problems[:5])
        more = len(self.problems) - 5
        super().__init__(
            f"{len(self.problems)} bad row field(s), nothing imported: {listed}"
            + (f"; and {more} more" if more > 0 else "")
        )


class CardDeclined(TillflowError):
    """The card terminal declined a checkout's card: no sale was recorded (the decline is,
    on the till's stream). Settle the basket in cash with the same checkout id, or try
    another card with a new checkout id."""

    def __init__(self, checkout_id: str, field: str, reason: str) -> None:
        self.checkout_id = checkout_id
        self.field = field
        self.reason = reason
        super().__init__(f"checkout_id={checkout_id!r}: {field} was declined: {reason}")


class RefundExceedsPayment(TillflowError):
    """A refund of more than a checkout's tenders have left, net of earlier refunds."""

    def __init__(self, checkout_id: str, refund: int, left: int) -> None:
        self.checkout_id = checkout_id
        self.refund = refund
        self.left = left
        super().__init__(
            f"refund={refund}: checkout {checkout_id!r} has {left} cent(s) of its payment "
            "left to refund"
        )


class UnknownTaxRate(InvalidField):
    """A rate name the shop's rate table does not have (``known``: the names it has)."""

    def __init__(self, field: str, rate: str, known: Sequence[str]) -> None:
        self.rate = rate
        self.known = tuple(known)
        have = ", ".join(known)
        super().__init__(field, rate, f"no tax rate {rate!r} in the table; the shop has {have}")


class UnknownReturn(TillflowError):
    """A return id that no return (of the checkout named, when one is) was recorded under."""

    def __init__(self, return_id: str) -> None:
        self.return_id = return_id
        super().__init__(f"return_id={return_id!r}: no such return")


class ReceiptNotNumbered(TillflowError):
    """A recorded checkout whose receipt number the ``tills`` processor (the cash-up)
    has not given yet (it runs behind the sale): ask again shortly."""

    def __init__(self, checkout_id: str) -> None:
        self.checkout_id = checkout_id
        super().__init__(
            f"checkout_id={checkout_id!r}: recorded, but its receipt is not numbered yet "
            "(the tills processor, which numbers receipts, is behind or stopped); ask again "
            "shortly"
        )
