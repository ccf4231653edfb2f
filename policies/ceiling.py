"""A partnership's ceiling: the most a partner may ever be shown. Nothing is shared beyond it."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from policies.vocabulary import DocumentKind

__all__ = ["MAX_GRANT_HOURS_LIMIT", "Ceiling"]

MAX_GRANT_HOURS_LIMIT = 168
"""No partnership allows a single grant longer than a week."""


class Ceiling(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which clients and document kinds can ever be shared, for how long, and whether secrets.

    `clients` is `"all"` or a list of the MSP's client ids.
    """

    clients: Literal["all"] | list[uuid.UUID] = "all"
    document_kinds: Annotated[list[DocumentKind], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: list(DocumentKind)
    )
    # a Friday-evening handoff runs to Monday morning: about 62 hours
    max_grant_hours: Annotated[int, msgspec.Meta(ge=1, le=MAX_GRANT_HOURS_LIMIT)] = 72
    secrets_allowed: bool = False

    def __post_init__(self) -> None:
        if len(set(self.document_kinds)) != len(self.document_kinds):
            raise ValueError("document_kinds lists a kind twice")
        if not isinstance(self.clients, str) and len(set(self.clients)) != len(self.clients):
            raise ValueError("clients lists a client twice")
