"""`/metrics` in the Prometheus text format (0.0.4); optionally behind a bearer token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response, get

from sharing import metrics
from sharing.clock import Clock
from tenants.errors import Unauthenticated

__all__ = ["metrics_endpoint"]

_GRANT_STATES = ("scheduled", "active", "expired", "revoked", "completed")
_OUTCOMES = ("pending", "delivered", "failed")


def _family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value:g}" for labels, value in samples]
    return lines


def render(snapshot: metrics.Snapshot) -> str:
    lines = _family(
        "shiftgate_grants",
        "gauge",
        "Grants by stored state.",
        [(f'{{state="{state}"}}', snapshot.grants.get(state, 0)) for state in _GRANT_STATES],
    )
    lines += _family(
        "shiftgate_worker_transitions_total",
        "counter",
        "Grant transitions processed by the workers.",
        [(f'{{transition="{name}"}}', value) for name, value in snapshot.transitions.items()],
    )
    lines += _family(
        "shiftgate_webhook_deliveries",
        "gauge",
        "Webhook deliveries by outcome.",
        [(f'{{outcome="{name}"}}', snapshot.deliveries.get(name, 0)) for name in _OUTCOMES],
    )
    lines += _family(
        "shiftgate_outbox_waiting",
        "gauge",
        "Events not yet fanned out to webhook endpoints.",
        [("", snapshot.outbox_waiting)],
    )
    lines += _family(
        "shiftgate_worker_lag_seconds",
        "gauge",
        "Now minus the oldest grant start or end not yet processed (0 when none is overdue).",
        [("", round(snapshot.lag_seconds, 3))],
    )
    return "\n".join(lines) + "\n"


@get(
    "/metrics",
    operation_id="getMetrics",
    tags=["service"],
    summary="Prometheus metrics",
    media_type="text/plain; version=0.0.4; charset=utf-8",
)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[str]:
    token = request.app.state.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthenticated("/metrics needs the metrics token as a bearer token")
    clock: Clock = request.app.state.clock
    return Response(render(await metrics.snapshot(await clock.now())))
