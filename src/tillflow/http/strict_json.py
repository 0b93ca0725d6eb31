"""JSON as JSON has it: ``NaN``, ``Infinity`` and ``-Infinity``, which Python's ``json`` (and
so FastAPI) reads as floats, make a body malformed JSON — 400 ``malformed-json`` with the
position, as any other malformed body, on every route that takes a body
(:class:`~tillflow.http.auth.GuardedRoute` calls :func:`refuse_json_constants`)."""

from __future__ import annotations

import json
import re
from typing import Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from tillflow.http.problems import is_json


class _NotJson(ValueError):
    """A ``NaN``, ``Infinity`` or ``-Infinity`` where JSON wants a value."""


def _refuse_constant(name: str) -> object:
    raise _NotJson(name)


_STRING_OR_CONSTANT: Final = re.compile(r'"(?:[^"\\]|\\.)*"|-?(?:NaN|Infinity)', re.DOTALL)


def _json_constant(body: bytes) -> tuple[str, int] | None:
    """The first ``NaN``, ``Infinity`` or ``-Infinity`` in ``body`` read as Python's ``json``
    (FastAPI's parser) reads it, and its character position; ``None`` when there is none
    (any other fault of the body is FastAPI's to report)."""
    try:
        json.loads(body, parse_constant=_refuse_constant)
    except _NotJson as found:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        for token in _STRING_OR_CONSTANT.finditer(text):  # strings skipped whole
            if not token.group().startswith('"'):
                return str(found), token.start()
        return str(found), -1  # pragma: no cover - json found one, so the scan does
    except ValueError:  # not JSON in another way (or digits Python will not read)
        return None
    return None


async def refuse_json_constants(request: Request) -> None:
    """Raise the ``json_invalid`` validation error FastAPI raises for malformed JSON when
    the JSON body of ``request`` holds a ``NaN``, ``Infinity`` or ``-Infinity``."""
    if not is_json(request.headers.get("content-type")):
        return
    found = _json_constant(await request.body())
    if found is not None:
        constant, position = found
        reason = f"{constant} is not JSON (JSON has no NaN or infinity)"
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", position),
                    "msg": "JSON decode error",
                    "ctx": {"error": reason},
                }
            ]
        )
