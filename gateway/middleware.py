"""ASGI middleware: a request id on every request and response, and the security headers."""

from __future__ import annotations

import re
import uuid

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestContextMiddleware", "request_id_of", "response_headers"]

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def request_id_of(scope: Scope) -> str:
    """The request's id: a sane incoming `X-Request-ID`, else a new one; kept in the scope."""
    state = scope.setdefault("state", {})
    if not state.get("request_id"):
        incoming = next(
            (value.decode("latin-1") for key, value in scope["headers"] if key == b"x-request-id"),
            "",
        )
        state["request_id"] = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    return str(state["request_id"])


def response_headers(request_id: str, path: str) -> dict[str, str]:
    """The headers every response carries.

    Error responses made outside the middleware stack (an unknown path, a CSRF failure) add them
    themselves: Litestar sends those past this middleware.
    """
    headers = {
        "X-Request-ID": request_id,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }
    if not path.startswith("/schema"):  # the schema browser loads its scripts from a CDN
        headers["Content-Security-Policy"] = _CSP
    return headers


class RequestContextMiddleware:
    """Takes a sane `X-Request-ID` or makes one, and sets headers that every response carries."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        wanted = response_headers(request_id_of(scope), scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in wanted.items():
                    if name == "Cache-Control" and "cache-control" in headers:
                        continue  # a response that says how to cache itself keeps it
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
