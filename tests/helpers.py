"""Builders for test data through the real services, and a portal sign-in helper."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sharing import accounts
from tenants import service
from tenants.roles import Actor, ActorKind, Role

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    user_id: uuid.UUID
    tenant: service.TenantInfo
    role: Role

    @property
    def actor(self) -> Actor:
        return Actor(
            kind=ActorKind.USER,
            id=self.user_id,
            label=self.email,
            tenant_id=self.tenant.id,
            tenant_kind=self.tenant.kind,
            role=self.role,
        )


async def make_tenant(kind: str = "msp", *, zone: str = "Europe/Berlin") -> service.TenantInfo:
    slug = f"{kind}-{uuid.uuid4().hex[:8]}"
    return await accounts.create_tenant(
        name=f"Tenant {slug}", slug=slug, kind=kind, time_zone=zone, actor=Actor.system("test")
    )


async def make_person(tenant: service.TenantInfo, role: Role = Role.ADMIN) -> Person:
    email = f"{role.value}-{uuid.uuid4().hex[:8]}@example.test"
    user = await accounts.create_user(
        email=email,
        display_name=email,
        password=PASSWORD,
        tenant_id=tenant.id,
        role=role.value,
        actor=Actor.system("test"),
    )
    return Person(email, PASSWORD, user.id, tenant, role)


def csrf_token(client: Any) -> str:
    token = client.cookies.get("shiftgate_csrf")
    assert token, "no CSRF cookie: GET a portal page first"
    return str(token)


async def sign_in(client: Any, person: Person) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    response = await client.post(
        "/login",
        data={
            "email": person.email,
            "password": person.password,
            "_csrf_token": csrf_token(client),
        },
    )
    assert response.status_code in (302, 303), response.text
    assert response.headers["location"] == "/"


def form_error(html: str) -> str | None:
    match = re.search(r'class="error"[^>]*>([^<]+)<', html)
    return match.group(1) if match else None
