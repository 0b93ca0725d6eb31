"""What the routes use, built by the app's lifespan and reached through one dependency."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from tillflow.engine import EventStore, Runtime
from tillflow.http.metrics import Metrics
from tillflow.http.watch import ReportWatch
from tillflow.service.access_tokens import TokenBook
from tillflow.shop.assembly import Shop
from tillflow.shop.receipts.model import ShopHeader


@dataclass
class Services:
    """The shop, its runtime, the token book, the report watch, the metrics and the
    receipts' header of one app."""

    shop: Shop
    runtime: Runtime
    tokens: TokenBook
    watch: ReportWatch
    metrics: Metrics
    header: ShopHeader = field(default_factory=ShopHeader)
    """What receipts print about the shop (its name, its time zone)."""

    @property
    def store(self) -> EventStore:
        return self.shop.store


def services_of(request: Request) -> Services:
    """The app's services (set by its lifespan)."""
    found = getattr(request.app.state, "services", None)
    if not isinstance(found, Services):  # pragma: no cover - only before start-up
        raise RuntimeError("the app is not started: run it under its lifespan")
    return found


async def services(request: Request) -> Services:
    """The dependency: ``async`` so that FastAPI does not hop to a worker thread for it."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(services)]
