"""The published OpenAPI document: named operations, declared authentication, no portal pages."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers import AppClient, served

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
async def client(settings, db) -> AsyncIterator[AppClient]:
    # conftest's `client` runs the app on another event loop: see `tests.helpers.served`.
    async with served(settings) as http:
        yield http


@pytest.fixture
async def schema(client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    assert document["openapi"].startswith("3.")
    return document


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in _METHODS
    ]


async def test_every_operation_has_a_unique_operation_id(schema) -> None:
    operations = _operations(schema)
    assert len(operations) > 10

    unnamed = [f"{method} {path}" for method, path, op in operations if not op.get("operationId")]
    counts = Counter(op["operationId"] for _, _, op in operations if op.get("operationId"))

    assert unnamed == []
    assert [name for name, count in counts.items() if count > 1] == []


async def test_every_api_operation_declares_a_bearer_scheme(schema) -> None:
    schemes = schema["components"]["securitySchemes"]
    bearer = {
        name
        for name, scheme in schemes.items()
        if scheme["type"] == "http" and scheme["scheme"].lower() == "bearer"
    }
    assert "bearerAuth" in bearer
    api = [(m, p, op) for m, p, op in _operations(schema) if p.startswith("/api/v1/")]
    assert api

    undeclared = [
        f"{method} {path}"
        for method, path, op in api
        if not any(set(requirement) & bearer for requirement in op.get("security", []))
    ]

    assert undeclared == []
    tenant_api = [
        (method, path, op)
        for method, path, op in api
        if path.startswith(
            ("/api/v1/me", "/api/v1/tenants", "/api/v1/tokens", "/api/v1/partnerships")
        )
    ]
    assert len(tenant_api) == 10
    for method, path, op in tenant_api:
        assert {"bearerAuth": []} in op["security"], f"{method} {path}"


async def test_no_portal_page_is_in_the_schema(client, schema) -> None:
    portal = {
        re.sub(r":[a-z]+}", "}", route.path)
        for route in client.app.routes
        for handler in getattr(route, "route_handlers", ())
        if handler.fn.__module__.startswith("gateway.portal")
    }
    assert {"/login", "/logout", "/", "/partnerships"} <= portal

    assert portal & set(schema["paths"]) == set()
    assert [path for path in schema["paths"] if path.startswith(("/static", "/schema"))] == []
