"""Sale's and Inventory's library entry points, called directly (no HTTP layer checking types
first), with anything in any field — None, lists, dicts, floats, bools, bytes, huge ints, NaN
and infinity, strings where numbers go, numbers where strings go — answer with a receipt or a
typed :class:`TillflowError` naming a field that was wrong and its value, and a refusal writes
nothing. ``checkout_many`` refuses such a command alone: the rest of its batch is recorded."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tillflow.engine import EventStore, InvalidEvent, MemoryEventStore, Receipt, TillflowError
from tillflow.shop.assembly import REGISTRY
from tillflow.shop.errors import (
    CheckoutConflict,
    InvalidField,
    ProductDiscontinued,
    ProductExists,
    ReturnExceedsPurchase,
    UnknownCheckout,
    UnknownProduct,
)
from tillflow.shop.inventory.commands import CountStock, ReceiveStock
from tillflow.shop.inventory.service import InventoryService
from tillflow.shop.sale.commands import (
    AddProduct,
    Checkout,
    DiscontinueProduct,
    LineRequest,
    RenameProduct,
    RepriceProduct,
    ReturnItems,
)
from tillflow.shop.sale.service import SaleService

NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HUGE = 10**5000
"""An int Python will not print (more than 4,300 digits): a refusal must still name it."""
SIGNALLING_NAN: Any = Decimal("sNaN")
"""A quantity that cannot even be compared (found by hypothesis in a CI run)."""


def _power_of_ten(exponent: int) -> int:
    power: int = 10**exponent
    return power


class _Shop:
    """A MemoryEventStore-backed shop: apple, bread and a discontinued product in the catalog,
    the checkout ``bought`` (5 apples), the return ``returned`` (1 apple of it) and the
    delivery ``delivered`` (10 apples)."""

    def __init__(self) -> None:
        self.store: EventStore = MemoryEventStore(registry=REGISTRY)
        self.sale = SaleService(self.store, clock=lambda: NOON)
        self.inventory = InventoryService(self.store)
        self.sale.add_product(AddProduct("apple", "Apple", 120))
        self.sale.add_product(AddProduct("bread", "Bread", 250))
        self.sale.add_product(AddProduct("old", "Old", 10))
        self.sale.discontinue_product(DiscontinueProduct("old"))
        self.sale.checkout(Checkout("bought", "till-1", [LineRequest("apple", 5)]))
        self.sale.return_items(ReturnItems("returned", "bought", [LineRequest("apple", 1)]))
        self.inventory.receive(ReceiveStock("apple", 10, "delivered"))

    def written(self, before: dict[int, int]) -> int:
        """Events recorded since the store's heads were ``before``."""
        return sum(self.store.heads().values()) - sum(before.values())


# -- values of the wrong type (and a few of the right type but wrong) -------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 0, 1, 5]),
    st.integers(4301, 4400).map(_power_of_ten),  # built, not listed: hypothesis prints strategies
    st.integers(4301, 4400).map(lambda digits: -_power_of_ten(digits)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, 2.0, 5.0]),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.just(Decimal("sNaN")),
    st.complex_numbers(),
    st.text(max_size=12),
    st.sampled_from(["5", "1", "1.0", "nan", "", " apple", "apple ", "apple", "bought", "old"]),
    st.binary(max_size=8),
    st.just(b"apple"),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.just(LineRequest("apple", 1)),
    st.just(object()),
)
wrong = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.frozensets(st.integers(), max_size=3),
        st.sets(st.text(max_size=3), max_size=3),
    ),
    max_leaves=6,
)
"""Anything a caller might pass by mistake, nested in containers."""

_line = st.one_of(
    st.builds(
        LineRequest,
        st.one_of(st.sampled_from(["apple", "bread", "old"]), wrong),
        st.one_of(st.integers(1, 3), wrong),
    ),
    wrong,
)
_lines = st.one_of(
    st.lists(_line, min_size=1, max_size=4),
    st.lists(_line, min_size=1, max_size=3).map(tuple),
    wrong,
)


def _fields(
    base: dict[str, object], wrong_for: dict[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """Each field of ``base`` as it is there, or a wrong value (``wrong_for[field]``)."""
    choices = wrong_for or {}
    return st.fixed_dictionaries(
        {
            field: st.one_of(st.just(value), choices.get(field, wrong))
            for field, value in base.items()
        }
    )


def _same(value: object, base: object) -> bool:
    if type(value) is not type(base):
        return False
    try:
        return bool(value == base)
    except ArithmeticError:  # Decimal("sNaN") refuses to be compared at all: not the same
        return False


def _wrong_fields(values: dict[str, Any], base: dict[str, object]) -> set[str]:
    return {field for field, value in values.items() if not _same(value, base[field])}


def _named_field(refusal: TillflowError) -> str:
    """The field a refusal names, for every refusal Sale and Inventory may give."""
    if isinstance(refusal, ReturnExceedsPurchase):
        return "lines"
    if isinstance(refusal, UnknownCheckout):
        return "checkout_id"
    if isinstance(refusal, ProductExists):
        return "product_id"
    assert isinstance(
        refusal, (InvalidField, UnknownProduct, ProductDiscontinued, CheckoutConflict)
    ), f"unexpected refusal {type(refusal).__name__}: {refusal}"
    if isinstance(refusal, InvalidField):
        assert str(refusal).startswith(f"{refusal.field}="), str(refusal)
    return refusal.field


def _check_refusal(refusal: TillflowError, wrong_fields: set[str]) -> None:
    field = _named_field(refusal)
    root = field.split("[", maxsplit=1)[0].split(".", maxsplit=1)[0]
    assert root in wrong_fields, f"{refusal!r} names {field!r}, but only {wrong_fields} were wrong"


def _outcome(call: Callable[[], Receipt]) -> Receipt | TillflowError:
    """The receipt, or the TillflowError; any other exception fails the test."""
    try:
        return call()
    except TillflowError as refusal:
        return refusal


# -- checkouts on every path ------------------------------------------------------------------

CHECKOUT = {"checkout_id": "c-1", "till_id": "till-1", "lines": [LineRequest("apple", 5)]}
CHECKOUT_AT: dict[str, object] = {**CHECKOUT, "at": None}
checkouts = _fields(
    CHECKOUT_AT,
    {
        "checkout_id": st.one_of(st.just("bought"), wrong),  # "bought": a retry, same content
        "lines": _lines,
    },
)
CHECKOUT_PATHS = ["checkout", "checkout_async", "checkout_many"]


def _checkout(shop: _Shop, path: str, command: Any) -> Receipt | TillflowError:
    if path == "checkout":
        return _outcome(lambda: shop.sale.checkout(command))
    if path == "checkout_async":
        return _outcome(lambda: asyncio.run(shop.sale.checkout_async(command)))
    good = [Checkout(f"good-{n}", "till-2", [LineRequest("bread", 1)]) for n in (1, 2)]
    outcomes = shop.sale.checkout_many([good[0], command, good[1]])
    assert len(outcomes) == 3
    assert isinstance(outcomes[0], Receipt), outcomes[0]
    assert isinstance(outcomes[2], Receipt), outcomes[2]
    assert isinstance(outcomes[1], (Receipt, TillflowError)), outcomes[1]
    return outcomes[1]


@settings(max_examples=300, deadline=None)
@given(values=checkouts, path=st.sampled_from(CHECKOUT_PATHS))
def test_a_checkout_with_anything_in_its_fields_gets_a_receipt_or_a_refusal_naming_a_wrong_field(
    values: dict[str, Any], path: str
) -> None:
    shop = _Shop()
    before = shop.store.heads()
    outcome = _checkout(shop, path, Checkout(**values))
    others = 2 if path == "checkout_many" else 0  # the good checkouts around it in the batch
    if isinstance(outcome, TillflowError):
        retry = _same(values["checkout_id"], "bought")  # of a checkout with the same lines
        base = {**CHECKOUT_AT, "checkout_id": "bought" if retry else "c-1"}
        _check_refusal(outcome, _wrong_fields(values, base))
        assert shop.written(before) == others, "a refused checkout wrote something"


# -- returns ----------------------------------------------------------------------------------

RETURN: dict[str, object] = {
    "return_id": "r-1",
    "checkout_id": "bought",
    "lines": [LineRequest("apple", 1)],
    "at": None,
}
returns = _fields(
    RETURN,
    {
        "return_id": st.one_of(st.just("returned"), wrong),  # "returned": a retry
        "lines": _lines,
    },
)


@settings(max_examples=200, deadline=None)
@given(values=returns)
@example(values={**RETURN, "lines": [LineRequest("apple", SIGNALLING_NAN)]})
def test_a_return_with_anything_in_its_fields_gets_a_receipt_or_a_refusal_naming_a_wrong_field(
    values: dict[str, Any],
) -> None:
    shop = _Shop()
    before = shop.store.heads()
    outcome = _outcome(lambda: shop.sale.return_items(ReturnItems(**values)))
    if isinstance(outcome, TillflowError):
        _check_refusal(outcome, _wrong_fields(values, {**RETURN, "return_id": "r-1"}))
        assert shop.written(before) == 0, "a refused return wrote something"


# -- the catalog and Inventory ----------------------------------------------------------------

Method = Callable[[_Shop], Callable[[Any], Receipt]]
"""The shop's method an entry point names."""
COMMANDS: dict[str, tuple[type[Any], dict[str, object], Method]] = {
    "add_product": (
        AddProduct,
        {"product_id": "pear", "name": "Pear", "price": 90},
        lambda shop: shop.sale.add_product,
    ),
    "rename_product": (
        RenameProduct,
        {"product_id": "apple", "name": "Green apple"},
        lambda shop: shop.sale.rename_product,
    ),
    "reprice_product": (
        RepriceProduct,
        {"product_id": "apple", "price": 130},
        lambda shop: shop.sale.reprice_product,
    ),
    "discontinue_product": (
        DiscontinueProduct,
        {"product_id": "bread"},
        lambda shop: shop.sale.discontinue_product,
    ),
    "receive": (
        ReceiveStock,
        {"product_id": "apple", "quantity": 10, "delivery_id": None},
        lambda shop: shop.inventory.receive,
    ),
    "receive (a retry)": (
        ReceiveStock,
        {"product_id": "apple", "quantity": 10, "delivery_id": "delivered"},
        lambda shop: shop.inventory.receive,
    ),
    "count": (
        CountStock,
        {"product_id": "apple", "counted": 7},
        lambda shop: shop.inventory.count,
    ),
}


@st.composite
def _commands(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    entry = draw(st.sampled_from(sorted(COMMANDS)))
    return entry, draw(_fields(COMMANDS[entry][1]))


@settings(max_examples=400, deadline=None)
@given(case=_commands())
def test_catalog_and_stock_commands_with_anything_in_their_fields_get_a_receipt_or_a_refusal(
    case: tuple[str, dict[str, Any]],
) -> None:
    entry, values = case
    kind, base, method = COMMANDS[entry]
    shop = _Shop()
    before = shop.store.heads()
    outcome = _outcome(lambda: method(shop)(kind(**values)))
    if isinstance(outcome, TillflowError):
        _check_refusal(outcome, _wrong_fields(values, base))
        assert shop.written(before) == 0, "a refused command wrote something"


# -- a command that is not one ----------------------------------------------------------------


def _checkout_async(shop: _Shop) -> Callable[[Any], Receipt]:
    return lambda command: asyncio.run(shop.sale.checkout_async(command))


ENTRY_POINTS: dict[str, tuple[type[Any], Method]] = {
    "checkout": (Checkout, lambda shop: shop.sale.checkout),
    "checkout_async": (Checkout, _checkout_async),
    "return_items": (ReturnItems, lambda shop: shop.sale.return_items),
    **{entry: (kind, method) for entry, (kind, _, method) in COMMANDS.items()},
}
_not_commands = st.one_of(
    wrong,
    st.sampled_from(
        [
            ReturnItems("r-2", "bought", [LineRequest("apple", 1)]),  # has checkout_id and lines
            RenameProduct("apple", "Renamed"),  # has product_id
            ReceiveStock("apple", 1),
            LineRequest("apple", 1),
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(entry=st.sampled_from(sorted(ENTRY_POINTS)), command=_not_commands)
def test_a_value_that_is_not_the_entry_points_command_is_refused_naming_command(
    entry: str, command: object
) -> None:
    kind, method = ENTRY_POINTS[entry]
    shop = _Shop()
    before = shop.store.heads()
    outcome = _outcome(lambda: method(shop)(command))
    if type(command) is not kind:
        assert isinstance(outcome, InvalidField), outcome
        assert outcome.field == "command"
        assert shop.written(before) == 0


@settings(max_examples=200, deadline=None)
@given(commands=st.one_of(wrong, st.lists(_not_commands, max_size=3)))
def test_checkout_many_given_anything_refuses_what_is_not_a_checkout_and_writes_nothing(
    commands: Any,
) -> None:
    shop = _Shop()
    before = shop.store.heads()
    try:
        outcomes = shop.sale.checkout_many(commands)
    except InvalidField as refusal:
        assert refusal.field == "commands"
        assert not isinstance(commands, (list, tuple))
    else:
        assert isinstance(commands, (list, tuple))
        assert len(outcomes) == len(commands)
        for outcome in outcomes:
            assert isinstance(outcome, InvalidField), outcome
            assert outcome.field == "command"
    assert shop.written(before) == 0


# -- the gaps found before, as examples -------------------------------------------------------


def _refusal(shop: _Shop, path: str, command: Checkout) -> TillflowError:
    before = shop.store.heads()
    outcome = _checkout(shop, path, command)
    assert isinstance(outcome, TillflowError), outcome
    assert shop.written(before) == (2 if path == "checkout_many" else 0)
    return outcome


@pytest.mark.parametrize("path", CHECKOUT_PATHS)
def test_lines_none_is_refused_naming_lines_on_every_path(path: str) -> None:
    command = Checkout("c-1", "till-1", None)  # type: ignore[arg-type]
    refusal = _refusal(_Shop(), path, command)
    assert isinstance(refusal, InvalidField)
    assert (refusal.field, refusal.value) == ("lines", None)


@pytest.mark.parametrize("path", CHECKOUT_PATHS)
@pytest.mark.parametrize("product_id", [["apple"], {"apple": 1}, ("apple",), b"apple", 7, None])
def test_a_product_id_that_is_not_a_string_is_refused_naming_the_line(
    path: str, product_id: object
) -> None:
    lines = [LineRequest("apple", 1), LineRequest("bread", 1), LineRequest(product_id, 1)]  # type: ignore[arg-type]
    refusal = _refusal(_Shop(), path, Checkout("c-1", "till-1", lines))
    assert isinstance(refusal, InvalidField)
    assert (refusal.field, refusal.value) == ("lines[2].product_id", product_id)
    assert str(refusal).startswith(f"lines[2].product_id={product_id!r}: ")


@pytest.mark.parametrize("path", CHECKOUT_PATHS)
@pytest.mark.parametrize("line", ["apple", None, ("apple", 1), {"product_id": "apple"}, 3])
def test_a_line_that_is_not_a_line_is_refused_naming_it(path: str, line: object) -> None:
    lines = [LineRequest("apple", 1), line]
    refusal = _refusal(_Shop(), path, Checkout("c-1", "till-1", lines))  # type: ignore[arg-type]
    assert isinstance(refusal, InvalidField)
    assert (refusal.field, refusal.value) == ("lines[1]", line)


def test_checkout_many_refuses_malformed_commands_alone_and_records_the_rest() -> None:
    shop = _Shop()
    before = shop.store.heads()
    outcomes = shop.sale.checkout_many(
        [
            Checkout("c-1", "till-1", [LineRequest("apple", 1)]),
            Checkout("c-2", "till-1", [LineRequest(["apple"], 1)]),  # type: ignore[arg-type]
            Checkout("c-3", "till-1", ["apple"]),  # type: ignore[list-item]
            Checkout("c-4", "till-1", None),  # type: ignore[arg-type]
            None,  # type: ignore[list-item]
            Checkout("c-5", "till-1", [LineRequest("bread", 2)]),
        ]
    )
    fields = [getattr(outcome, "field", None) for outcome in outcomes]
    assert fields == [None, "lines[0].product_id", "lines[0]", "lines", "command", None]
    assert isinstance(outcomes[0], Receipt)
    assert isinstance(outcomes[5], Receipt)
    assert shop.written(before) == 2


@pytest.mark.parametrize("path", CHECKOUT_PATHS)
def test_a_quantity_too_large_to_print_is_refused_naming_the_line(path: str) -> None:
    refusal = _refusal(_Shop(), path, Checkout("c-1", "till-1", [LineRequest("apple", HUGE)]))
    assert isinstance(refusal, InvalidField)
    assert refusal.field == "lines[0].quantity"
    assert refusal.value == "<int of 5001 digits>"


def test_a_price_too_large_to_print_is_refused_naming_price() -> None:
    shop = _Shop()
    before = shop.store.heads()
    with pytest.raises(InvalidField) as caught:
        shop.sale.reprice_product(RepriceProduct("apple", -HUGE))
    assert (caught.value.field, caught.value.value) == ("price", "<negative int of 5001 digits>")
    assert shop.written(before) == 0


def test_a_retried_return_with_a_time_that_is_not_one_is_refused_naming_at() -> None:
    shop = _Shop()
    before = shop.store.heads()
    with pytest.raises(InvalidField) as caught:
        shop.sale.return_items(ReturnItems("returned", "bought", [LineRequest("apple", 1)], 5))  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.value) == ("at", 5)
    assert shop.written(before) == 0


def test_an_error_about_a_number_python_cannot_print_still_has_a_message() -> None:
    huge = 10**5000
    field_error = InvalidField("quantity", huge, "too many")
    assert field_error.value == huge
    assert "quantity=<int of about 5001 digits>: too many" in str(field_error)
    event_error = InvalidEvent("data", -huge, "not encodable")
    assert "<int of about 5001 digits>" in str(event_error)
