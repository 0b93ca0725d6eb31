"""The application factory: :func:`create_app` builds an app; nothing happens at import.

Its lifespan opens the store (unless one is given), builds the :class:`Shop`, starts the
processors' runtime and the report watch, and closes them all on shutdown (running
batches finish first).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from tillflow import __version__
from tillflow.engine import EventStore, Runtime
from tillflow.engine.outage import StoreStatus
from tillflow.engine.postgres.leases import LeaseOverview
from tillflow.http import (
    catalog,
    catalog_import,
    checkouts,
    dead_letters,
    events,
    exports,
    problems,
    processors,
    receipts,
    report,
    sales,
    stock,
    tax_rates,
    tills,
)
from tillflow.http.catalog_import import IMPORT_LIMIT, IMPORT_PATH
from tillflow.http.fast_checkout import CheckoutFastPath
from tillflow.http.leases import lease_overview
from tillflow.http.limits import DEFAULT_LIMIT, BodyLimit
from tillflow.http.metrics import Metrics, RequestMetrics
from tillflow.http.problems import MEDIA_TYPE, FieldError, Problem, problem_response
from tillflow.http.services import Services
from tillflow.http.watch import ReportWatch
from tillflow.service.access_tokens import TokenBook
from tillflow.service.bootstrap import open_store, service_registry
from tillflow.service.settings import Settings, load_settings, shop_header, simulated_terminal
from tillflow.shop.assembly import Shop
from tillflow.shop.receipts.model import ShopHeader
from tillflow.shop.sale.payments import PaymentTerminal
from tillflow.shop.sale.service import Clock, utc_now
from tillflow.shop.sale.simulated_terminal import SimulatedTerminal

STATIC: Final = Path(__file__).parent / "static"

DESCRIPTION: Final = """\
The shop over HTTP. Money is integer minor units (cents); quantities are integers.

**Tokens**: `Authorization: Bearer <token>`, made with
`tillflow token create --role till|manager|viewer --name NAME`.
*till*: checkouts and returns. *manager*: catalog and stock, and all a viewer may.
*viewer*: report, shortfalls, processors, the live stream, metrics. Anyone with a token
may read the catalog and recorded checkouts.

**Errors** are RFC 9457 problem documents (`application/problem+json`) naming each
field and the reason.

**Read-your-writes**: every write answers with `receipt.token`; pass it as
`?wait_for=` to a report read.
"""


RunRuntime = Callable[[EventStore, Runtime], contextlib.AbstractAsyncContextManager[object]]
"""Runs a runtime over a store for the duration of an ``async with`` block."""


def _run_alone(store: EventStore, runtime: Runtime) -> Runtime:
    return runtime


def _leases_unless_away(store: EventStore, runtime: Runtime) -> LeaseOverview | None:
    """The lease tables, unless the processors find the database away (left out at once)."""
    return None if runtime.health.degraded else lease_overview(store)


def _no_status() -> StoreStatus | None:
    return None


class TillflowAPI(FastAPI):
    """FastAPI with an OpenAPI document that describes problem documents exactly."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema:
            return self.openapi_schema
        schema = super().openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (Problem, FieldError):
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(found.pop("$defs", {}))
            components[model.__name__] = found
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                # any request may be one the server cannot parse (framing headers, methods)
                operation.setdefault("responses", {}).setdefault("400", problem_response(400))
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if str(status).startswith(("4", "5")) and MEDIA_TYPE in content:
                        content.pop("application/json", None)
        self.openapi_schema = schema
        return schema


def _heeding_outages(shop: Shop, runtime: Runtime) -> TokenBook:
    """The token book, and the sale's catalog and till states, told to answer from what
    they read before while the runtime knows the database away: requests authenticate and
    price checkouts on the event loop, which must not wait on a database that cannot
    answer."""

    def away() -> bool:
        return runtime.health.degraded

    shop.sale.away = away
    return TokenBook(shop.store, away=away)


def create_app(
    settings: Settings | None = None,
    *,
    store: EventStore | None = None,
    clock: Clock = utc_now,
    run_processors: bool = True,
    body_limit: int = DEFAULT_LIMIT,
    fast_checkouts: bool = True,
    run_runtime: RunRuntime | None = None,
    terminal: PaymentTerminal | None = None,
) -> FastAPI:
    """A new app. ``store``: serve this open store (the caller closes it); otherwise the
    lifespan opens ``settings.database`` (default: :func:`load_settings`) and closes it.
    ``run_processors``: run the shop's processors here (else a ``tillflow worker`` does).
    ``body_limit``: request bodies over this many bytes are refused (413).
    ``fast_checkouts``: answer the plain ``POST /checkouts`` without the framework
    (:mod:`tillflow.http.fast_checkout`; the same answers, less work per request).
    ``run_runtime``: how the processors' runtime runs while the app serves (default:
    ``async with runtime``; ``tillflow serve`` also keeps leases of the lanes on PostgreSQL).
    ``terminal``: the card terminal (default: a simulated one, configured by ``settings``
    when given, else approving every card)."""
    metrics = Metrics()
    if terminal is None:
        terminal = simulated_terminal(settings) if settings else SimulatedTerminal()
    run = run_runtime or _run_alone

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = store
        header = shop_header(settings) if settings else ShopHeader()
        if opened is None:
            chosen = settings or load_settings()
            header = shop_header(chosen)
            opened = open_store(
                chosen.database, registry=service_registry(), busy_timeout=chosen.busy_timeout
            )
        try:
            shop = Shop(opened, clock, terminal=terminal)
            runtime = shop.runtime(run=None if run_processors else [])
            runtime.stall_after = (settings or load_settings()).stall_after
            watch = ReportWatch(opened, on_progress=metrics.latency.progressed)
            async with (
                run(opened, runtime),
                watch.running(),
                metrics.dead_letters.counting(
                    opened,
                    [each.name for each in shop.processors],
                    away=lambda: runtime.health.degraded,
                ),
            ):
                metrics.statistics = runtime.statistics
                metrics.store_health = runtime.health.status
                metrics.report_rows = shop.report.rows
                metrics.leases = functools.partial(_leases_unless_away, opened, runtime)
                app.state.services = Services(
                    shop, runtime, _heeding_outages(shop, runtime), watch, metrics, header
                )
                try:
                    yield
                finally:
                    app.state.services = None
                    metrics.statistics = list
                    metrics.leases = metrics.no_leases
                    metrics.store_health = _no_status
                    metrics.report_rows = list
        finally:
            if store is None:
                opened.close()

    app = TillflowAPI(
        title="tillflow",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # the app's metrics are its own (/metrics); FastAPI's OpenTelemetry hooks would
        # look up the global providers on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    problems.install(app)
    for module in (
        catalog,
        tax_rates,
        checkouts,
        receipts,
        stock,
        report,
        processors,
        events,
        dead_letters,
    ):
        app.include_router(module.router)
    app.include_router(catalog_import.router)
    app.include_router(exports.router)
    app.include_router(sales.router)
    app.include_router(tills.router)
    if STATIC.is_dir():
        app.mount("/dashboard", StaticFiles(directory=STATIC, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    app.add_middleware(BodyLimit, limit=body_limit, larger={IMPORT_PATH: IMPORT_LIMIT})
    if fast_checkouts:  # inside the request metrics, outside the body limit's layer
        app.add_middleware(CheckoutFastPath, limit=body_limit)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app
