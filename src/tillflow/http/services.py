"""What the routes use, built by the app's lifespan and reached through one dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from tillflow.engine import EventStore, Runtime
from tillflow.http.metrics import Metrics
from tillflow.http.watch import ReportWatch
from tillflow.service.access_tokens import TokenBook
from tillflow.shop.assembly import Shop


@dataclass
class Services:
    """The shop, its runtime, the token book, the report watch and the metrics of one app."""

    shop: Shop
    runtime: Runtime
    tokens: TokenBook
    watch: ReportWatch
    metrics: Metrics

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
