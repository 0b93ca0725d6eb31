"""Catalog files: CSV with a header row → an :class:`ImportCatalog` command.

::

    product_id,name,price,gtin
    apple,Apple,120,4006381333931
    pear,Pear,80,

Columns by name, in any order: ``product_id``, ``name``, ``price`` (minor units, tax
included, e.g. ``120`` for 1.20) are required; ``gtin`` is optional (a column left out
leaves every GTIN as it is, an empty cell removes the product's), and so is ``tax_rate``
(a rate of the shop's table; left out or empty: as it is, the default for a new product).
UTF-8 (a byte-order mark is fine); cells are trimmed;
blank lines are skipped; a quoted cell may span lines. Rows are numbered by the line they
start on (the header is line 1). A header that cannot be used is refused at once; a row that
cannot be read (too many or too few cells, not UTF-8) is reported with the rows' own
problems, which :func:`~tillflow.shop.sale.catalog_import.decide_import` finds.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Final

import msgspec

from tillflow.shop.errors import CatalogImportRefused, RowProblem
from tillflow.shop.sale.catalog_import import MAX_ROWS, CatalogRow, ImportCatalog

REQUIRED: Final = ("product_id", "name", "price")
OPTIONAL: Final = ("gtin", "tax_rate")
MEDIA_TYPE: Final = "text/csv"


def decoded(lines: Iterable[bytes]) -> Iterator[str]:
    """``lines`` (of a file opened in binary) as text; a leading byte-order mark dropped.
    Raises :class:`CatalogImportRefused` naming the first line that is not UTF-8."""
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            problem = RowProblem(number, "file", line[error.start : error.end], "not UTF-8")
            raise CatalogImportRefused([problem]) from None
        yield text.removeprefix("\ufeff") if number == 1 else text


def read_catalog(lines: Iterable[str]) -> ImportCatalog:
    """The import ``lines`` (of a CSV file, each with its line ending) ask for. Raises
    :class:`CatalogImportRefused` for a file with no usable header or no rows, or more than
    ``MAX_ROWS`` rows; rows of the wrong width are in the command's ``problems``."""
    counted = _Counted(lines)
    reader = csv.reader(counted, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise CatalogImportRefused([RowProblem(1, "file", "", "empty: no header row")])
        columns = _columns([cell.strip() for cell in header])
        rows: list[CatalogRow] = []
        problems: list[RowProblem] = []
        while True:
            line = counted.number + 1
            try:
                cells = next(reader, None)
            except csv.Error as error:
                problems.append(RowProblem(line, "row", None, f"not CSV: {error}"))
                break  # the reader cannot go on past it
            if cells is None:
                break
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if len(cells) != len(columns):
                reason = f"has {len(cells)} cells; the header has {len(columns)}"
                problems.append(RowProblem(line, "row", len(cells), reason))
                continue
            rows.append(_row(line, dict(zip(columns, (c.strip() for c in cells), strict=True))))
            if len(rows) > MAX_ROWS:
                raise CatalogImportRefused(
                    [RowProblem(line, "file", len(rows), f"more than {MAX_ROWS:,} rows")]
                )
    except csv.Error as error:  # in the header
        raise CatalogImportRefused([RowProblem(1, "header", None, f"not CSV: {error}")]) from None
    if not rows and not problems:
        raise CatalogImportRefused([RowProblem(1, "file", "", "no rows below the header")])
    return ImportCatalog(rows, problems)


def _columns(header: list[str]) -> list[str]:
    """The header's column names, checked: the required ones there, none unknown or twice."""
    problems = []
    for index, name in enumerate(header):
        if name not in REQUIRED + OPTIONAL:
            known = ", ".join(REQUIRED + OPTIONAL)
            problems.append(RowProblem(1, "header", name, f"unknown column (known: {known})"))
        elif name in header[:index]:
            problems.append(RowProblem(1, "header", name, "column given twice"))
    problems += [
        RowProblem(1, "header", name, "required column missing")
        for name in REQUIRED
        if name not in header
    ]
    if problems:
        raise CatalogImportRefused(problems)
    return header


def _row(line: int, cells: dict[str, str]) -> CatalogRow:
    gtin: str | msgspec.UnsetType | None = msgspec.UNSET
    if "gtin" in cells:
        gtin = cells["gtin"] or None
    tax_rate: str | msgspec.UnsetType = cells.get("tax_rate") or msgspec.UNSET
    return CatalogRow(line, cells["product_id"], cells["name"], cells["price"], gtin, tax_rate)


class _Counted:
    """The lines of a file, counting those handed out (``number``: the last one's)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        return line
