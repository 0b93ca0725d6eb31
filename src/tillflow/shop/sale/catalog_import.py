"""Importing a catalog: a list of rows → the catalog events that make the catalog say what
the rows say, or a refusal naming every bad field of every row.

A row names a product by id. A product not in the catalog is added; one that is gets a
``ProductRenamed`` / ``ProductRepriced`` / ``ProductGtinChanged`` / ``ProductTaxRateChanged``
for each field that differs;
an unchanged row writes nothing (so importing the same rows again writes nothing). Products
the rows do not name are left alone. A row's GTIN may be left out (``UNSET``: its GTIN stays
as it is) or empty (``None``: it has none); so may its tax rate (``UNSET``: as it is, or the
default rate for a new product). GTINs must be unique in the catalog the import leaves
behind: a GTIN may move from one product to another within one import.

The decision is pure and checks everything before anything is written: the service appends
all the events in one append guarded by the catalog's version (all or nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

import msgspec

from tillflow.shop import validation
from tillflow.shop.errors import CatalogImportRefused, InvalidField, RowProblem
from tillflow.shop.sale import gtin as gtins
from tillflow.shop.sale.catalog import Catalog, Product
from tillflow.shop.sale.events import (
    ProductAdded,
    ProductGtinChanged,
    ProductRenamed,
    ProductRepriced,
    ProductTaxRateChanged,
)
from tillflow.shop.sale.tax_rates import rate_name

T = TypeVar("T")
MAX_ROWS: Final = 100_000
_DIGITS: Final = re.compile(r"[0-9]{1,20}")

CatalogEvent = (
    ProductAdded | ProductRenamed | ProductRepriced | ProductGtinChanged | ProductTaxRateChanged
)


class CatalogRow(msgspec.Struct, frozen=True):
    """One product as an import states it. ``line``: where the row stands in its file (named
    by every refusal of it). ``price`` in minor units; a text of digits (a file's cell)
    counts as its number. ``gtin``: ``UNSET`` leaves the product's GTIN as it is, ``None``
    (an empty cell) removes it. ``tax_rate``: a rate of the shop's table; ``UNSET`` leaves
    the product's as it is (a new product: the default rate)."""

    line: int
    product_id: str
    name: str
    price: int | str
    gtin: str | msgspec.UnsetType | None = msgspec.UNSET
    tax_rate: str | msgspec.UnsetType = msgspec.UNSET


class ImportCatalog(msgspec.Struct, frozen=True):
    """Make the catalog say what ``rows`` say. ``problems``: what was found wrong while
    reading the rows' file (rows that could not be read at all), reported with the rest."""

    rows: list[CatalogRow]
    problems: list[RowProblem] = msgspec.field(default_factory=list)


@dataclass
class ImportPlan:
    """What an import writes (``events``, in order) and how many products each kind of
    change touched."""

    events: list[CatalogEvent] = field(default_factory=list)
    added: int = 0
    renamed: int = 0
    repriced: int = 0
    gtins_changed: int = 0
    retaxed: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class _Checked:
    row: CatalogRow
    product_id: str
    name: str
    price: int
    gtin: str | msgspec.UnsetType | None
    tax_rate: str | msgspec.UnsetType


def decide_import(catalog: Catalog, command: ImportCatalog) -> ImportPlan:
    """The events that make ``catalog`` say what ``command``'s rows say. Raises
    :class:`CatalogImportRefused` listing every bad field of every row (by line, in file
    order) — a value the shop refuses, a product id given twice, a GTIN two products would
    carry, a change to a discontinued product — and nothing else is decided."""
    validation.of_type("command", command, ImportCatalog)
    if not isinstance(command.rows, list):
        raise validation.invalid("rows", command.rows, "must be a list of CatalogRow")
    if len(command.rows) > MAX_ROWS:
        raise InvalidField("rows", len(command.rows), f"at most {MAX_ROWS:,} rows")
    problems = list(command.problems)
    if not command.rows:
        if problems:  # every row of the file was unreadable
            raise CatalogImportRefused(problems)
        raise InvalidField("rows", 0, "no rows to import")
    checked = _checked_rows(catalog, command.rows, problems)
    _unique_gtins(catalog, checked, problems)
    plan = ImportPlan()
    for one in checked:
        _plan_row(catalog.products.get(one.product_id), one, plan, problems)
    if problems:
        raise CatalogImportRefused(sorted(problems, key=lambda problem: problem.line))
    return plan


def _checked_rows(
    catalog: Catalog, rows: list[CatalogRow], problems: list[RowProblem]
) -> list[_Checked]:
    """Each row's fields validated (every bad one noted); rows with no bad field."""
    checked: list[_Checked] = []
    first_line: dict[str, int] = {}
    for row in rows:
        if not isinstance(row, CatalogRow):
            problems.append(RowProblem(0, "row", row, "must be a CatalogRow"))
            continue
        before = len(problems)
        line = row.line
        product_id = _valid(problems, line, "product_id", row.product_id, validation.identifier)
        name = _valid(problems, line, "name", row.name, validation.name)
        price = _valid(problems, line, "price", _number(row.price), validation.price)
        gtin: str | msgspec.UnsetType | None = row.gtin
        if not isinstance(gtin, msgspec.UnsetType):
            gtin = _valid(problems, line, "gtin", gtin, gtins.optional)
        tax_rate: str | msgspec.UnsetType | None = row.tax_rate
        if not isinstance(tax_rate, msgspec.UnsetType):
            tax_rate = _valid(
                problems, line, "tax_rate", tax_rate, lambda f, v: rate_name(f, v, catalog.rates)
            )
        if isinstance(product_id, str):
            if product_id in first_line:
                problems.append(
                    RowProblem(
                        row.line,
                        "product_id",
                        product_id,
                        f"given twice (first on line {first_line[product_id]})",
                    )
                )
            else:
                first_line[product_id] = row.line
        if len(problems) == before:
            assert isinstance(product_id, str) and isinstance(name, str)
            assert isinstance(price, int) and tax_rate is not None
            checked.append(_Checked(row, product_id, name, price, gtin, tax_rate))
    return checked


def _valid(
    problems: list[RowProblem],
    line: int,
    name: str,
    value: object,
    rule: Callable[[str, object], T],
) -> T | None:
    """``rule(name, value)``, or ``None`` with its refusal noted in ``problems``."""
    try:
        return rule(name, value)
    except InvalidField as refused:
        problems.append(RowProblem(line, name, refused.value, refused.reason))
        return None


def _number(price: object) -> object:
    """A text of digits as its number; anything else as it is (the price rule judges it)."""
    if isinstance(price, str) and _DIGITS.fullmatch(price):
        return int(price)
    return price


def _unique_gtins(catalog: Catalog, checked: list[_Checked], problems: list[RowProblem]) -> None:
    """Note every row whose GTIN another product would still carry after the import."""
    after = dict(catalog.gtins)
    moved = {
        one.product_id: one.gtin for one in checked if not isinstance(one.gtin, msgspec.UnsetType)
    }
    for held, product_id in catalog.gtins.items():
        if product_id in moved and moved[product_id] != held:
            del after[held]  # the row takes it off this product
    line_of: dict[str, int] = {}
    for one in checked:
        gtin = one.gtin
        if isinstance(gtin, msgspec.UnsetType) or gtin is None:
            continue
        holder = after.get(gtin)
        if gtin in line_of:
            reason = f"also given on line {line_of[gtin]}"
        elif holder is not None and holder != one.product_id:
            reason = f"product {holder!r} carries this GTIN"
        else:
            line_of[gtin] = one.row.line
            after[gtin] = one.product_id
            continue
        problems.append(RowProblem(one.row.line, "gtin", one.row.gtin, reason))


def _plan_row(
    product: Product | None, one: _Checked, plan: ImportPlan, problems: list[RowProblem]
) -> None:
    """Add to ``plan`` what makes ``product`` (``None``: a new one) say what ``one`` says."""
    gtin, tax_rate = one.gtin, one.tax_rate
    if product is None:
        added = ProductAdded(
            one.product_id,
            one.name,
            one.price,
            gtin=None if isinstance(gtin, msgspec.UnsetType) else gtin,
        )
        if not isinstance(tax_rate, msgspec.UnsetType):
            added = msgspec.structs.replace(added, tax_rate=tax_rate)
        plan.events.append(added)
        plan.added += 1
        return
    changes: list[CatalogEvent] = []
    if one.name != product.name:
        changes.append(ProductRenamed(one.product_id, one.name))
        plan.renamed += 1
    if one.price != product.price:
        changes.append(ProductRepriced(one.product_id, one.price))
        plan.repriced += 1
    if not isinstance(gtin, msgspec.UnsetType) and gtin != product.gtin:
        changes.append(ProductGtinChanged(one.product_id, gtin))
        plan.gtins_changed += 1
    if not isinstance(tax_rate, msgspec.UnsetType) and tax_rate != product.tax_rate:
        changes.append(ProductTaxRateChanged(one.product_id, tax_rate))
        plan.retaxed += 1
    if not changes:
        plan.unchanged += 1
    elif product.discontinued:
        problems.append(
            RowProblem(one.row.line, "product_id", one.product_id, "the product is discontinued")
        )
    plan.events.extend(changes)
