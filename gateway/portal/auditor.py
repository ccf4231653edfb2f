"""Auditors: the audit log with its filters, the timeline of a grant, exports, the chain's
verification status.
"""

from __future__ import annotations

from litestar import Controller

__all__ = ["AuditPages"]


class AuditPages(Controller):
    path = "/"
    include_in_schema = False
