"""MSP hand-offs and grants: hand off an incident, the live grants list, revoke, complete,
extensions, hand-back notes, the rotation list.
"""

from __future__ import annotations

from litestar import Controller

__all__ = ["GrantPages"]


class GrantPages(Controller):
    path = "/"
    include_in_schema = False
