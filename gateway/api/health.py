"""Liveness (`/healthz`) and readiness (`/readyz`: the database, and Redis when configured)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from gateway.database import ping_database

__all__ = ["healthz", "readyz"]


class Health(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


@get("/healthz", operation_id="getHealth", tags=["service"], summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@get("/readyz", operation_id="getReadiness", tags=["service"], summary="Dependencies answer")
async def readyz(request: Request[Any, Any, Any]) -> Response[Health]:
    checks: dict[str, str] = {}
    try:
        await ping_database(request.app.state.engine)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    redis = request.app.state.redis
    if redis is not None:
        try:
            await redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return Response(
        Health(status="ok" if ready else "unavailable", checks=checks),
        status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE,
    )
