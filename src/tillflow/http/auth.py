"""Bearer tokens and roles.

=========  ===================================================================
role       may
=========  ===================================================================
till       ring up checkouts and returns; list the catalog
manager    change the catalog, receive and count stock; everything a viewer may
viewer     read the catalog, the report, shortfalls, processors, the live stream, metrics
=========  ===================================================================

Every route but ``/health``, the OpenAPI document, ``/docs`` and the static dashboard
page needs a token: missing, unknown or revoked → 401 with ``WWW-Authenticate: Bearer``;
a role outside its rights → 403. The check runs before the body is parsed
(:class:`GuardedRoute`), so nothing about a request is looked at without a valid token.
The live stream also takes the token as ``?access_token=`` (a browser's ``EventSource``
cannot send headers); request logs show route templates only, never query strings.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from tillflow.http.services import services_of
from tillflow.http.strict_json import refuse_json_constants
from tillflow.service.access_tokens import Role

BEARER: Final = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token from `tillflow token create --role till|manager|viewer --name …`.",
)
PRINCIPAL_KEY: Final = "tillflow.principal"
MOST_TOKEN_LENGTH: Final = 512

TILLS: Final = frozenset({Role.TILL})
MANAGERS: Final = frozenset({Role.MANAGER})
VIEWERS: Final = frozenset({Role.MANAGER, Role.VIEWER})
ANYONE: Final = frozenset(Role)


@dataclass(frozen=True, slots=True)  # slots: made on every request, in half the time
class Principal:
    """Who is asking: the token's name and role."""

    name: str
    role: Role


def _unauthenticated(detail: str, invalid: bool) -> HTTPException:
    challenge = 'Bearer realm="tillflow"'
    if invalid:
        challenge += ', error="invalid_token"'
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def _first_header(request: Request, name: bytes) -> str | None:
    """The first header called ``name`` (lower case), as ``request.headers.get`` gives it,
    without building the headers' mapping (the guard runs on every request)."""
    for key, value in request.scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RoleGuard:
    """A dependency requiring a valid token of one of ``roles`` to ``action``."""

    def __init__(self, roles: frozenset[Role], action: str, query_token: bool = False) -> None:
        self.roles = roles
        self.action = action
        self.query_token = query_token

    def _secret(self, request: Request) -> str | None:
        header = _first_header(request, b"authorization")
        if header is not None:
            scheme, _, secret = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise _unauthenticated("the Authorization header must be 'Bearer <token>'", True)
            return secret.strip()
        if self.query_token:
            return request.query_params.get("access_token")
        return None

    def check(self, request: Request) -> Principal:
        """The principal of ``request``; raises 401 / 403 ``HTTPException``."""
        cached = request.scope.get(PRINCIPAL_KEY)
        if isinstance(cached, Principal):
            return cached
        secret = self._secret(request)
        if not secret:
            raise _unauthenticated("a bearer token is required (Authorization: Bearer …)", False)
        if len(secret) > MOST_TOKEN_LENGTH:
            raise _unauthenticated("unknown token", True)
        token = services_of(request).tokens.authenticate(secret)
        if token is None:
            raise _unauthenticated("unknown token", True)
        if not token.active:
            raise _unauthenticated(f"token {token.name!r} was revoked", True)
        if token.role not in self.roles:
            allowed = " or ".join(sorted(role.value for role in self.roles))
            raise HTTPException(
                403,
                f"role {token.role.value!r} (token {token.name!r}) may not {self.action}; "
                f"needs {allowed}",
                headers={"WWW-Authenticate": 'Bearer realm="tillflow", error="insufficient_scope"'},
            )
        principal = Principal(token.name, token.role)
        request.scope[PRINCIPAL_KEY] = principal
        return principal

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> Principal:
        return self.check(request)


def require(roles: frozenset[Role], action: str, query_token: bool = False) -> Any:
    """``Depends`` on a :class:`RoleGuard` (use in a route's ``dependencies``)."""
    return Depends(RoleGuard(roles, action, query_token))


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class GuardedRoute(APIRoute):
    """A route that checks its :class:`RoleGuard` before FastAPI reads the body, refuses
    query parameters it does not declare (as bodies refuse unknown fields), and refuses a
    JSON body holding ``NaN`` or infinity as malformed (400), as JSON does."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = [
            dependency.dependency
            for dependency in self.dependencies
            if isinstance(dependency.dependency, RoleGuard)
        ]
        declared = _query_names(self.dependant)
        takes_body = self.body_field is not None

        async def guarded(request: Request) -> Response:
            for guard in guards:
                guard.check(request)
            unknown = [name for name in request.query_params if name not in declared]
            if unknown:
                raise RequestValidationError(
                    [
                        {"type": "extra_forbidden", "loc": ("query", name), "msg": "unknown"}
                        for name in unknown
                    ]
                )
            if takes_body:
                await refuse_json_constants(request)
            return await handler(request)

        return guarded
