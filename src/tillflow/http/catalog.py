"""Catalog routes: list, look up by GTIN (anyone with a token), add, rename, reprice, change
the tax rate or the GTIN, discontinue (managers). The rate table itself:
:mod:`tillflow.http.tax_rates`; importing a CSV file: :mod:`tillflow.http.catalog_import`.

Changes are commands (``POST /catalog/{id}/rename`` …): each appends one event to the
catalog stream and answers with the product as it is now and the receipt.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tillflow.engine import Receipt
from tillflow.http.auth import ANYONE, MANAGERS, GuardedRoute, require
from tillflow.http.problems import problem_responses
from tillflow.http.schemas import Gtin, Identifier, Name, Price, ReceiptOut, RequestBody
from tillflow.http.services import Services, ServicesDep
from tillflow.shop.errors import UnknownGtin, UnknownProduct
from tillflow.shop.sale import gtin as gtins
from tillflow.shop.sale.catalog import Product
from tillflow.shop.sale.commands import (
    AddProduct,
    ChangeProductGtin,
    ChangeProductTaxRate,
    DiscontinueProduct,
    RenameProduct,
    RepriceProduct,
)
from tillflow.shop.sale.vat import DEFAULT_RATE

router = APIRouter(prefix="/catalog", tags=["catalog"], route_class=GuardedRoute)

ProductId = Annotated[
    Identifier,
    Path(description="The product's id.", openapi_examples={"apple": {"value": "apple"}}),
]
READ = problem_responses(401, 403, 422)
WRITE = problem_responses(400, 401, 403, 404, 409, 413, 415, 422)


class ProductOut(BaseModel):
    product_id: str
    name: str
    price: int = Field(description="Minor units, tax included.")
    tax_rate: str = Field(description="The name of its rate in the shop's table.")
    discontinued: bool
    gtin: str | None = Field(description="Its GTIN (barcode) in 14 digits, or none.")

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        return cls.model_validate(product, from_attributes=True)


class CatalogOut(BaseModel):
    """Every product ever added (discontinued ones flagged), as of ``version`` of the
    catalog stream."""

    version: int
    products: list[ProductOut]


class CatalogChangeOut(BaseModel):
    """The product after the change, and the change's receipt."""

    product: ProductOut
    receipt: ReceiptOut


class AddProductIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"product_id": "tea", "name": "Green tea", "price": 250}]}
    )

    product_id: Identifier
    name: Name
    price: Price
    tax_rate: Identifier = Field(
        default=DEFAULT_RATE, description="A rate of the shop's table (GET /tax-rates)."
    )
    gtin: Gtin | None = Field(default=None, description="Its barcode; no other product's.")


class RenameProductIn(RequestBody):
    name: Name


class RepriceProductIn(RequestBody):
    price: Price


class ChangeGtinIn(RequestBody):
    gtin: Gtin | None = Field(description="The product's barcode from now on; null: none.")


class ChangeTaxRateIn(RequestBody):
    tax_rate: Identifier = Field(description="A rate of the shop's table (GET /tax-rates).")


def _changed(services: Services, product_id: str, receipt: Receipt) -> CatalogChangeOut:
    product = services.shop.sale.catalog().products[product_id]
    return CatalogChangeOut(product=ProductOut.of(product), receipt=ReceiptOut.of(receipt))


@router.get(
    "",
    summary="List the catalog",
    dependencies=[require(ANYONE, "read the catalog")],
    responses=READ,
)
async def list_products(services: ServicesDep) -> CatalogOut:
    catalog = services.shop.sale.catalog()
    products = sorted(catalog.products.values(), key=lambda product: product.product_id)
    return CatalogOut(
        version=catalog.version, products=[ProductOut.of(product) for product in products]
    )


@router.get(
    "/{product_id}",
    summary="One product",
    dependencies=[require(ANYONE, "read the catalog")],
    responses=problem_responses(401, 403, 404, 422),
)
async def get_product(product_id: ProductId, services: ServicesDep) -> ProductOut:
    product = services.shop.sale.catalog().products.get(product_id)
    if product is None:
        raise UnknownProduct(product_id)
    return ProductOut.of(product)


@router.get(
    "/by-gtin/{gtin}",
    summary="The product carrying a GTIN (a scanned barcode)",
    dependencies=[require(ANYONE, "read the catalog")],
    responses=problem_responses(401, 403, 404, 422),
)
async def product_by_gtin(
    gtin: Annotated[Gtin, Path(description="EAN-13, UPC-A, EAN-8 or GTIN-14.")],
    services: ServicesDep,
) -> ProductOut:
    catalog = services.shop.sale.catalog()
    product_id = catalog.gtins.get(gtins.normalised("gtin", gtin))
    if product_id is None:
        raise UnknownGtin(gtin)
    return ProductOut.of(catalog.products[product_id])


@router.post(
    "",
    status_code=201,
    summary="Add a product",
    dependencies=[require(MANAGERS, "change the catalog")],
    responses=WRITE,
)
async def add_product(body: AddProductIn, services: ServicesDep) -> CatalogChangeOut:
    command = AddProduct(
        body.product_id, body.name, body.price, gtin=body.gtin, tax_rate=body.tax_rate
    )
    receipt = await run_in_threadpool(services.shop.sale.add_product, command)
    return _changed(services, body.product_id, receipt)


@router.post(
    "/{product_id}/rename",
    summary="Rename a product",
    dependencies=[require(MANAGERS, "change the catalog")],
    responses=WRITE,
)
async def rename_product(
    product_id: ProductId, body: RenameProductIn, services: ServicesDep
) -> CatalogChangeOut:
    command = RenameProduct(product_id, body.name)
    receipt = await run_in_threadpool(services.shop.sale.rename_product, command)
    return _changed(services, product_id, receipt)


@router.post(
    "/{product_id}/reprice",
    summary="Change a product's price (minor units)",
    dependencies=[require(MANAGERS, "change the catalog")],
    responses=WRITE,
)
async def reprice_product(
    product_id: ProductId, body: RepriceProductIn, services: ServicesDep
) -> CatalogChangeOut:
    command = RepriceProduct(product_id, body.price)
    receipt = await run_in_threadpool(services.shop.sale.reprice_product, command)
    return _changed(services, product_id, receipt)


@router.post(
    "/{product_id}/tax-rate",
    summary="Sell a product at another rate of the table from now on",
    dependencies=[require(MANAGERS, "change the catalog")],
    responses=WRITE,
)
async def change_tax_rate(
    product_id: ProductId, body: ChangeTaxRateIn, services: ServicesDep
) -> CatalogChangeOut:
    command = ChangeProductTaxRate(product_id, body.tax_rate)
    receipt = await run_in_threadpool(services.shop.sale.change_tax_rate, command)
    return _changed(services, product_id, receipt)


@router.post(
    "/{product_id}/gtin",
    summary="Give a product a GTIN (barcode), another one, or none",
    dependencies=[require(MANAGERS, "change the catalog")],
    responses=WRITE,
)
async def change_gtin(
    product_id: ProductId, body: ChangeGtinIn, services: ServicesDep
) -> CatalogChangeOut:
    command = ChangeProductGtin(product_id, body.gtin)
    receipt = await run_in_threadpool(services.shop.sale.change_gtin, command)
    return _changed(services, product_id, receipt)


@router.post(
    "/{product_id}/discontinue",
    summary="Stop selling a product (it stays in the report)",
    dependencies=[require(MANAGERS, "change the catalog")],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def discontinue_product(product_id: ProductId, services: ServicesDep) -> CatalogChangeOut:
    command = DiscontinueProduct(product_id)
    receipt = await run_in_threadpool(services.shop.sale.discontinue_product, command)
    return _changed(services, product_id, receipt)
