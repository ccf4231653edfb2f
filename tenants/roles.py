"""Who is acting: roles, API token scopes, the permissions they carry, and the `Actor` value."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

from tenants.errors import Forbidden

__all__ = [
    "PLATFORM_TENANT_ID",
    "Actor",
    "ActorKind",
    "Permission",
    "Role",
    "TenantKind",
    "TokenScope",
]

PLATFORM_TENANT_ID = uuid.UUID(int=0)
"""The chain of events that belong to no tenant (operator commands, sign-ins of unknown emails)."""


class TenantKind(enum.StrEnum):
    MSP = "msp"
    NOC = "noc"
    BOTH = "both"

    @property
    def is_msp(self) -> bool:
        return self in {TenantKind.MSP, TenantKind.BOTH}

    @property
    def is_noc(self) -> bool:
        return self in {TenantKind.NOC, TenantKind.BOTH}


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    TECHNICIAN = "technician"
    AUDITOR = "auditor"


class TokenScope(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    HANDOFF = "handoff"
    AUDIT = "audit"


class Permission(enum.StrEnum):
    TENANT_READ = "tenant:read"
    PARTNERSHIP_MANAGE = "partnership:manage"
    TOKEN_MANAGE = "token:manage"
    MEMBER_MANAGE = "member:manage"
    AUDIT_READ = "audit:read"
    CONTENT_WRITE = "content:write"
    CONTENT_READ = "content:read"
    HANDOFF_CREATE = "handoff:create"
    WEBHOOK_MANAGE = "webhook:manage"
    AUDIT_MANAGE = "audit:manage"  # retention; no token scope grants it


_ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission),
    Role.TECHNICIAN: frozenset(
        {
            Permission.TENANT_READ,
            Permission.CONTENT_READ,
            Permission.CONTENT_WRITE,
            Permission.HANDOFF_CREATE,
        }
    ),
    Role.AUDITOR: frozenset({Permission.TENANT_READ, Permission.AUDIT_READ}),
}

# Tokens never manage tokens or members: a leaked token cannot mint itself a successor.
_SCOPE_PERMISSIONS: dict[TokenScope, frozenset[Permission]] = {
    TokenScope.READ: frozenset({Permission.TENANT_READ, Permission.CONTENT_READ}),
    TokenScope.WRITE: frozenset(
        {Permission.CONTENT_WRITE, Permission.PARTNERSHIP_MANAGE, Permission.WEBHOOK_MANAGE}
    ),
    TokenScope.HANDOFF: frozenset({Permission.HANDOFF_CREATE}),
    TokenScope.AUDIT: frozenset({Permission.AUDIT_READ}),
}


class ActorKind(enum.StrEnum):
    USER = "user"
    API_TOKEN = "api_token"
    OAUTH_CLIENT = "oauth_client"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated caller, acting within one tenant (`tenant_id`), or the system itself."""

    kind: ActorKind
    id: uuid.UUID | None
    label: str
    tenant_id: uuid.UUID | None = None
    tenant_kind: TenantKind | None = None
    role: Role | None = None
    scopes: frozenset[TokenScope] = field(default_factory=frozenset)

    @classmethod
    def system(cls, label: str = "shiftgate") -> Actor:
        return cls(kind=ActorKind.SYSTEM, id=None, label=label)

    @property
    def permissions(self) -> frozenset[Permission]:
        if self.kind is ActorKind.SYSTEM:
            return frozenset(Permission)
        if self.role is not None:
            return _ROLE_PERMISSIONS[self.role]
        granted: set[Permission] = set()
        for scope in self.scopes:
            granted |= _SCOPE_PERMISSIONS[scope]
        return frozenset(granted)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require_msp(self, permission: Permission, refusal: str) -> uuid.UUID:
        """Like `require`, in a tenant that is an MSP; `refusal` says what only an MSP does."""
        tenant_id = self.require(permission)
        if self.tenant_kind is not None and not self.tenant_kind.is_msp:
            raise Forbidden(refusal, code="not_msp")
        return tenant_id

    def require(self, permission: Permission) -> uuid.UUID:
        """Return the acting tenant, or raise `Forbidden` naming the missing permission."""
        if self.tenant_id is None or not self.can(permission):
            raise Forbidden(
                f"this action needs the {permission.value!r} permission in the current tenant",
                code="permission_missing",
            )
        return self.tenant_id
