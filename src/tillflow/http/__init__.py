"""The shop over HTTP: a FastAPI app, its problem documents, tokens and metrics.

::

    request ─► RequestMetrics (latency by route template)
            ─► CheckoutFastPath: the plain POST /checkouts, by the route's rules (201)
            ─► BodyLimit (413 before parsing)
            ─► GuardedRoute: bearer token → role (401 / 403) ─► route ─► Shop ─► store
                                                                 └─ errors → problems (RFC 9457)

    lifespan: open store ─► Shop ─► Runtime (inventory ─► reporting) ─► ReportWatch
                                                                         ├─► /events/report (SSE)
                                                                         └─► metrics (latency)

:mod:`.fast_checkout` answers a till's well-formed checkout without the framework's
per-request work, through the route's own guard, model and reply, and hands everything
else to the route.
Routes, one module per resource: :mod:`.catalog`, :mod:`.checkouts` (and returns),
:mod:`.stock`, :mod:`.report`, :mod:`.processors` (status, metrics, health),
:mod:`.events` (server-sent events). Static files under ``static/`` are served at
``/dashboard``.
"""

from tillflow.http.app import create_app

__all__ = ["create_app"]
