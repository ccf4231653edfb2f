"""Benchmarks of partner tokens: how many the gateway issues per second, and how many it
verifies per second, in pure code and through the partner API.

Collected only with SHIFTGATE_BENCH=1 (`make bench`). Requests go to the app in-process (no
network, no server), one after another. They print figures and assert only that every request
succeeded; no timing is asserted.

    SHIFTGATE_BENCH=1 .venv/bin/python -m pytest tests/bench/test_token_bench.py -m bench -s -q
    SHIFTGATE_BENCH_TOKENS=1000 ...   # requests per measurement (default 300)
"""

from __future__ import annotations

import os
import time

import pytest

from gateway.oauth.tokens import verify_access_token
from gateway.settings import Settings
from tenants.roles import Role
from tenants.tables import IssuedToken
from tests.helpers import (
    assertion_form,
    bearer,
    client_assertion,
    client_key,
    gateway,
    key_client,
    make_person,
    make_tenant,
    request_token,
    secret_client,
)

pytestmark = pytest.mark.bench

TOKENS = int(os.environ.get("SHIFTGATE_BENCH_TOKENS", "300"))
VERIFY_ROUNDS = 10 * TOKENS


async def test_token_issuance_and_verification(settings: Settings, db: object) -> None:
    backend = settings.database_kind
    noc = await make_tenant("noc")
    admin = await make_person(noc, Role.ADMIN)
    view, secret = await secret_client(admin)
    key = client_key()
    key_view = await key_client(admin, key)
    # the limits protect production; here they would stop the measurement
    async with gateway(
        settings, token_rate_per_client=10 * TOKENS, token_rate_per_address=10 * TOKENS
    ) as http:
        warm = await request_token(http, view.client_id, secret)  # signing key made here
        assert warm.status_code == 200, warm.text

        tokens: list[str] = []
        start = time.perf_counter()
        for _ in range(TOKENS):
            response = await request_token(http, view.client_id, secret)
            assert response.status_code == 200, response.text
            tokens.append(response.json()["access_token"])
        took = time.perf_counter() - start
        assert await IssuedToken.count() == TOKENS + 1
        print(
            f"\n[{backend}] token issuance: {TOKENS / took:.1f} tokens/s"
            f" (client_secret_basic, {TOKENS} sequential requests in-process,"
            f" {took / TOKENS * 1000:.2f} ms each, each with its audit event)"
        )

        assertions = [
            client_assertion(key_view.client_id, key, audience=settings.issuer)
            for _ in range(TOKENS)
        ]
        start = time.perf_counter()
        for assertion in assertions:
            response = await http.post("/oauth/token", data=assertion_form(assertion))
            assert response.status_code == 200, response.text
        took = time.perf_counter() - start
        print(
            f"[{backend}] token issuance: {TOKENS / took:.1f} tokens/s"
            f" (private_key_jwt, ES256 assertions signed beforehand, {took / TOKENS * 1000:.2f} ms each)"
        )

        app_settings = http.app.state.settings
        signer = http.app.state.signer
        start = time.perf_counter()
        for index in range(VERIFY_ROUNDS):
            verified = await verify_access_token(tokens[index % TOKENS], app_settings, signer)
            assert verified.client_id == view.client_id
        took = time.perf_counter() - start
        print(
            f"[{backend}] token verification (signature+claims): {VERIFY_ROUNDS / took:.0f}/s"
            f" (gateway.oauth.tokens.verify_access_token, {took / VERIFY_ROUNDS * 1e6:.0f} us each)"
        )

        start = time.perf_counter()
        for token in tokens:
            response = await http.get("/api/v1/partner/me", headers=bearer(token))
            assert response.status_code == 200, response.text
        took = time.perf_counter() - start
        print(
            f"[{backend}] token verification (full GET /api/v1/partner/me): {TOKENS / took:.0f}/s"
            f" (signature, claims, token row, client row; {took / TOKENS * 1000:.2f} ms each)"
        )
