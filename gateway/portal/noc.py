"""NOC technicians: my grants, the incident bundle, the document reader with break-glass, notes,
extensions; OAuth clients for NOC admins.
"""

from __future__ import annotations

from litestar import Controller

__all__ = ["NocPages"]


class NocPages(Controller):
    path = "/"
    include_in_schema = False
