"""``POST /catalog-import`` (managers): a catalog file in the body, ``Content-Type: text/csv``
(the format: :mod:`tillflow.service.catalog_csv`).

Every row is checked before anything is written; a file with bad rows is 422
``invalid-catalog`` naming each bad field with its ``line``, and nothing is imported. A good
file is written in one append guarded by the catalog's version (a concurrent catalog change:
409 ``concurrency-conflict``, nothing written — send it again). Rows that change nothing
write nothing, so sending the same file twice imports it once. The body may be up to
:data:`IMPORT_LIMIT` bytes (other routes keep the app's body limit).
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from tillflow.http.auth import MANAGERS, GuardedRoute, require
from tillflow.http.problems import problem_responses
from tillflow.http.schemas import ReceiptOut
from tillflow.http.services import Services, ServicesDep
from tillflow.service.catalog_csv import MEDIA_TYPE, decoded, read_catalog
from tillflow.shop.sale.service import ImportOutcome

IMPORT_PATH: Final = "/catalog-import"
"""Not under ``/catalog/``: ``GET /catalog/{product_id}`` would answer for it too."""
IMPORT_LIMIT: Final = 16 * 1024 * 1024
"""Bytes a catalog file may have (about 200,000 rows of a typical catalog)."""

router = APIRouter(tags=["catalog"], route_class=GuardedRoute)

EXAMPLE: Final = "product_id,name,price,gtin\napple,Apple,120,4006381333931\npear,Pear,80,\n"


class ImportOut(BaseModel):
    """What the import changed: products ``added``, ``renamed``, ``repriced``, whose GTIN
    or tax rate changed, and rows that changed nothing; the catalog's ``version`` after it; the
    ``receipt`` of its one append (``null``: nothing changed, nothing written)."""

    added: int
    renamed: int
    repriced: int
    gtins_changed: int
    retaxed: int
    unchanged: int
    version: int
    receipt: ReceiptOut | None = Field(description="Null when the file changed nothing.")

    @classmethod
    def of(cls, outcome: ImportOutcome) -> ImportOut:
        plan = outcome.plan
        receipt = outcome.receipt
        return cls(
            added=plan.added,
            renamed=plan.renamed,
            repriced=plan.repriced,
            gtins_changed=plan.gtins_changed,
            retaxed=plan.retaxed,
            unchanged=plan.unchanged,
            version=outcome.version,
            receipt=None if receipt is None else ReceiptOut.of(receipt),
        )


def _is_csv(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == MEDIA_TYPE


def _imported(services: Services, body: bytes) -> ImportOutcome:
    """Read ``body`` as a catalog file and import it (blocks: run in a worker thread)."""
    command = read_catalog(decoded(body.splitlines(keepends=True)))
    return services.shop.sale.import_catalog(command)


@router.post(
    IMPORT_PATH,
    summary="Import or update the catalog from a CSV file (all or nothing)",
    dependencies=[require(MANAGERS, "change the catalog")],
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {MEDIA_TYPE: {"schema": {"type": "string"}, "example": EXAMPLE}},
        }
    },
)
async def import_catalog(request: Request, services: ServicesDep) -> ImportOut:
    if not _is_csv(request.headers.get("content-type")):
        raise HTTPException(415, f"send the catalog file as {MEDIA_TYPE}")
    body = await request.body()
    return ImportOut.of(await run_in_threadpool(_imported, services, body))
