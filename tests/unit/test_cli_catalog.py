"""``tillflow catalog import`` on a real SQLite file: a good file, a file with several bad
rows (each named by line, nothing written), the same file again (nothing written), and
``tillflow checkout @GTIN=N``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tillflow.cli import app
from tillflow.engine import SqliteEventStore
from tillflow.service.bootstrap import service_registry
from tillflow.shop.assembly import Shop
from tillflow.shop.sale.catalog import Catalog
from tillflow.shop.sale.commands import AddProduct
from tillflow.shop.sale.events import CATALOG_STREAM, CheckedOut, checkout_stream

runner = CliRunner()
PEN = "4006381333931"
GUM = "73513537"


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    with SqliteEventStore(path, registry=service_registry()) as store:
        Shop(store).sale.add_product(AddProduct("pen", "Pen", 150, gtin=PEN))
    return str(path)


def _catalog(database: str) -> Catalog:
    with SqliteEventStore(Path(database), registry=service_registry()) as store:
        return Catalog().refresh(store)


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "catalog.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_good_file_imports_and_running_it_again_writes_nothing(
    tmp_path: Path, database: str
) -> None:
    file = _file(
        tmp_path, f"product_id,name,price,gtin\npen,Ballpoint,150,{PEN}\ngum,Gum,50,{GUM}\n"
    )
    done = runner.invoke(app, ["catalog", "import", file, "-d", database])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip()  # the receipt token
    assert (
        "1 added, 1 renamed, 0 repriced, 0 GTIN(s) changed, 0 tax rate(s) changed, 0 unchanged"
        in done.stderr
    )
    catalog = _catalog(database)
    assert (catalog.version, catalog.products["pen"].name) == (3, "Ballpoint")
    assert catalog.gtins["00000073513537"] == "gum"

    again = runner.invoke(app, ["catalog", "import", file, "-d", database])
    assert again.exit_code == 0, again.output
    assert again.stdout == ""
    assert "2 unchanged (catalog version 3)" in again.stderr
    assert _catalog(database).version == 3


def test_a_file_with_bad_rows_names_every_line_and_writes_nothing(
    tmp_path: Path, database: str
) -> None:
    file = _file(
        tmp_path,
        "product_id,name,price,gtin\n"
        "gum,Gum,fifty,\n"  # 2
        f"ink,Ink,300,{PEN}\n"  # 3: the pen's
        "mint,Mint,80,73513538\n"  # 4
        "fine,Fine,1,\n",
    )
    refused = runner.invoke(app, ["catalog", "import", file, "-d", database])
    assert refused.exit_code == 1
    assert refused.stdout == ""
    lines = refused.stderr.strip().splitlines()
    assert [line.split(":")[0].strip() for line in lines[:3]] == ["line 2", "line 3", "line 4"]
    assert "price='fifty': must be a whole number" in lines[0]
    assert "product 'pen' carries this GTIN" in lines[1]
    assert "wrong EAN-8 check digit: expected 7" in lines[2]
    assert lines[3] == "error: 3 bad field(s) in the file; nothing imported"
    assert _catalog(database).version == 1


def test_a_missing_file_is_bad_usage(tmp_path: Path, database: str) -> None:
    missing = runner.invoke(app, ["catalog", "import", str(tmp_path / "none.csv"), "-d", database])
    assert missing.exit_code == 2
    assert "none.csv" in missing.stderr


def test_checkout_rings_up_by_barcode(database: str) -> None:
    done = runner.invoke(
        app, ["checkout", "--till", "till-1", "--id", "c-1", f"@{PEN}=2", "-d", database]
    )
    assert done.exit_code == 0, done.output
    with SqliteEventStore(Path(database), registry=service_registry()) as store:
        [recorded] = store.read_stream(checkout_stream("c-1"))
        line = recorded.decode(CheckedOut).lines[0]
    assert (line.product_id, line.quantity) == ("pen", 2)
    unknown = runner.invoke(
        app, ["checkout", "--till", "till-1", "--id", "c-2", f"@{GUM}=1", "-d", database]
    )
    assert unknown.exit_code == 1
    assert "lines[0].gtin='73513537'" in unknown.stderr


def test_the_catalog_stream_is_untouched_by_a_refused_import(tmp_path: Path, database: str) -> None:
    file = _file(tmp_path, "product_id,name\npen,Pen\n")
    refused = runner.invoke(app, ["catalog", "import", file, "-d", database])
    assert refused.exit_code == 1
    assert "line 1: header='price': required column missing" in refused.stderr
    with SqliteEventStore(Path(database), registry=service_registry()) as store:
        assert store.stream_version(CATALOG_STREAM) == 1
