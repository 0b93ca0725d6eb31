"""The shop over HTTP: a FastAPI app, its problem documents, tokens and metrics.

::

    request ─► CheckoutFastPath: the plain POST /checkouts ─► Shop ─► store (201)
            ─► RequestMetrics (latency by route template) ─► BodyLimit (413 before parsing)
            ─► GuardedRoute: bearer token → role (401 / 403) ─► route ─► Shop ─► store
                                                                 └─ errors → problems (RFC 9457)

    lifespan: open store ─► Shop ─► Runtime (inventory ─► reporting) ─► ReportWatch
                                                                         ├─► /events/report (SSE)
                                                                         └─► metrics (latency)

:mod:`.fast_checkout` answers a till's well-formed checkout without the framework's
per-request work and hands everything else to the route (the same answers either way).
Routes, one module per resource: :mod:`.catalog`, :mod:`.checkouts` (and returns),
:mod:`.stock`, :mod:`.report`, :mod:`.processors` (status, metrics, health),
:mod:`.events` (server-sent events). Static files under ``static/`` are served at
``/dashboard``.
"""

from tillflow.http.app import create_app

__all__ = ["create_app"]
