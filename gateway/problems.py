"""Every error becomes an RFC 9457 problem (JSON for the API, a plain page for the portal).

Nothing a client sees carries a stack trace; a database or Redis failure is a 503 that serves
nothing (fail closed).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_410_GONE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from gateway.middleware import request_id_of, response_headers
from tenants.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unauthenticated
from tenants.keyring import IntegrityFailure, KeysDestroyed

__all__ = ["exception_handlers", "problem_response", "wants_html"]

_log = logging.getLogger("shiftgate.errors")
PROBLEM_JSON = "application/problem+json"

_STATUS = {
    Invalid: HTTP_422_UNPROCESSABLE_ENTITY,
    NotFound: HTTP_404_NOT_FOUND,
    Forbidden: HTTP_403_FORBIDDEN,
    Conflict: HTTP_409_CONFLICT,
    Unauthenticated: HTTP_401_UNAUTHORIZED,
    KeysDestroyed: HTTP_410_GONE,
    # Stored ciphertext that does not open is a fault on our side, never the caller's input.
    IntegrityFailure: HTTP_500_INTERNAL_SERVER_ERROR,
}


def wants_html(request: Request[Any, Any, Any]) -> bool:
    """Portal pages answer errors in HTML; the API, OAuth and health endpoints in problem JSON."""
    path = request.url.path
    return not path.startswith(
        ("/api/", "/oauth/", "/.well-known/", "/healthz", "/readyz", "/metrics")
    )


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    body: dict[str, Any] = {
        "type": f"urn:shiftgate:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        **(extra or {}),
    }
    # Errors raised before a route is found (an unknown path) or inside a middleware (CSRF) are
    # sent past the request-context middleware: give them its id and headers here.
    request_id = request_id_of(request.scope)
    body["request_id"] = request_id
    headers = {**response_headers(request_id, request.url.path), **(headers or {})}
    if wants_html(request):
        from gateway.portal.views import error_page

        return error_page(request, status, title, detail, headers=headers)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    status = next(
        (code for kind, code in _STATUS.items() if isinstance(exc, kind)),
        HTTP_500_INTERNAL_SERVER_ERROR,
    )
    extra = {**({"code": exc.code} if exc.code else {}), **exc.extra}
    return problem_response(
        request, status, exc.title, exc.detail, code=type(exc).__name__.lower(), extra=extra
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return _unexpected(request, exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and exc.extra:
        extra["errors"] = exc.extra
    title = {400: "Bad request", 401: "Authentication required", 403: "Forbidden"}.get(
        status, exc.detail if status != 404 else "Not found"
    )
    detail = exc.detail
    if isinstance(exc, ValidationException):
        detail = _validation_detail(exc)
    return problem_response(
        request,
        status,
        title,
        detail,
        code="validation" if isinstance(exc, ValidationException) else f"http-{status}",
        extra=extra,
        headers=exc.headers,
    )


def _validation_detail(exc: ValidationException) -> str:
    if isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0]
        if isinstance(first, dict) and "message" in first:
            where = first.get("key")
            named = where and where != "data"  # "data" is the whole body, not a field
            return f"{first['message']}" + (f" (field {where!r})" if named else "")
    return exc.detail or "the request is not valid"


def _unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    _log.error("backing service failure: %s: %s", type(exc).__name__, str(exc).splitlines()[:1])
    return problem_response(
        request,
        HTTP_503_SERVICE_UNAVAILABLE,
        "Service unavailable",
        "a backing service (database, audit log or cache) is unavailable: nothing was served "
        "or changed; try again shortly",
        code="unavailable",
        headers={"Retry-After": "5"},
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if _is_integrity_error(exc):
        return problem_response(
            request,
            HTTP_409_CONFLICT,
            "Conflict",
            "the change conflicts with another one made at the same time: nothing was changed",
            code="conflict",
        )
    if _is_backing_failure(exc):
        return _unavailable(request, exc)
    _log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal error",
        "something went wrong on our side; the request id identifies it in the logs",
        code="internal",
    )


def _is_integrity_error(exc: BaseException) -> bool:
    import asyncpg

    if isinstance(exc, sqlite3.IntegrityError):
        # SQLite reports a trigger's RAISE(ABORT) as a constraint error; like an exception raised
        # by a PostgreSQL trigger, it is the database refusing the write, not two changes clashing.
        return getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_CONSTRAINT_TRIGGER
    return isinstance(exc, asyncpg.IntegrityConstraintViolationError)


def _is_backing_failure(exc: BaseException) -> bool:
    import asyncpg
    import redis.exceptions

    return isinstance(
        exc,
        sqlite3.OperationalError
        | sqlite3.DatabaseError
        | asyncpg.PostgresError
        | asyncpg.InterfaceError
        | redis.exceptions.ConnectionError
        | redis.exceptions.TimeoutError
        | ConnectionError
        | TimeoutError
        | OSError,
    )


def exception_handlers() -> ExceptionHandlersMap:
    return {
        DomainError: _domain_error,
        HTTPException: _http_error,
        Exception: _unexpected,
    }
