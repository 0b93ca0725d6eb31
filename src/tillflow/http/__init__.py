"""The shop over HTTP: a FastAPI app, its problem documents, tokens and metrics.

::

    request ─► RequestMetrics (latency by route template) ─► BodyLimit (413 before parsing)
            ─► GuardedRoute: bearer token → role (401 / 403) ─► route ─► Shop ─► store
                                                                 └─ errors → problems (RFC 9457)

    lifespan: open store ─► Shop ─► Runtime (inventory ─► reporting) ─► ReportWatch
                                                                         ├─► /events/report (SSE)
                                                                         └─► metrics (latency)

Routes, one module per resource: :mod:`.catalog`, :mod:`.checkouts` (and returns),
:mod:`.stock`, :mod:`.report`, :mod:`.processors` (status, metrics, health),
:mod:`.events` (server-sent events). Static files under ``static/`` are served at
``/dashboard``.
"""

from tillflow.http.app import create_app

__all__ = ["create_app"]
