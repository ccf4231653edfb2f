"""MSP settings and the account page: the business-hours schedule editor, webhooks, changing one's
password.
"""

from __future__ import annotations

from litestar import Controller

__all__ = ["AdminPages"]


class AdminPages(Controller):
    path = "/"
    include_in_schema = False
