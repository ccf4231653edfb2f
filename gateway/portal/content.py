"""MSP clients and documents: lists with filters, the Markdown editor with preview, revision
history and diff, audited reveal of credentials.
"""

from __future__ import annotations

from litestar import Controller

__all__ = ["ContentPages"]


class ContentPages(Controller):
    path = "/"
    include_in_schema = False
