"""Request body limit: a pure ASGI middleware that refuses bodies over ``limit`` bytes with
413 before anything parses them.

It trusts neither ``Content-Length`` nor its absence: a declared length over the limit is
refused at once, and the body is read from the stream, counting bytes, up to the limit;
only a body that fits is handed on (replayed as one message). Later ``receive`` calls go
to the server, so a streaming response still hears ``http.disconnect``. A few paths (an
uploaded catalog file) may have a larger limit of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tillflow.http.problems import FieldError, problem

DEFAULT_LIMIT: Final = 64 * 1024


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes (413 problem document); a path in
    ``larger`` has the limit given there instead."""

    def __init__(
        self, app: ASGIApp, limit: int = DEFAULT_LIMIT, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.larger = dict(larger or {})

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, limit: int
    ) -> None:
        if status == 413:
            response = problem(
                413,
                "body-too-large",
                "Content too large",
                f"the body is larger than {limit:,} bytes",
                [FieldError(field="body", reason=f"at most {limit} bytes", location="body")],
                headers={"Connection": "close"},
            )
        else:
            response = problem(
                400,
                "bad-request",
                "Bad request",
                "the Content-Length header is not a number",
                [FieldError(field="Content-Length", reason="not a number", location="header")],
                headers={"Connection": "close"},
            )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.limit)
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                await self._refuse(scope, receive, send, 400, limit)
                return
            if int(text) > limit:
                await self._refuse(scope, receive, send, 413, limit)
                return
            if int(text) == 0 and b"transfer-encoding" not in headers:
                await self.app(scope, receive, send)
                return
        elif b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body at all
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, 413, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
