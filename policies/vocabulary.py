"""The shared words of sharing rules: document kinds and sensitivity levels."""

from __future__ import annotations

import enum

__all__ = ["DocumentKind", "Sensitivity"]


class DocumentKind(enum.StrEnum):
    SOP = "sop"
    RUNBOOK = "runbook"
    CONFIGURATION = "configuration"
    CONTACT = "contact"
    LOCATION = "location"
    NETWORK = "network"
    CREDENTIAL = "credential"
    NOTE = "note"


class Sensitivity(enum.StrEnum):
    """Ordered: a ceiling of `confidential` admits `standard` and `confidential`."""

    STANDARD = "standard"
    CONFIDENTIAL = "confidential"
    SECRET = "secret"

    @property
    def rank(self) -> int:
        return list(Sensitivity).index(self)
