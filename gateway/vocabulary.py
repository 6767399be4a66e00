"""The CRM vocabulary shared by storage (column values) and the linking engine (its inputs).

One definition of each word: the database stores these values, the pure engine decides with them.
This module imports nothing of the project, so every layer may use it.
"""

from __future__ import annotations

from enum import StrEnum


class ItemType(StrEnum):
    """A CRM item type (bindings, rights, timeline)."""

    LEAD = "lead"
    CONTACT = "contact"
    COMPANY = "company"
    DEAL = "deal"


class Channel(StrEnum):
    """How a client reached us; also an activity's kind."""

    CALL = "call"
    EMAIL = "email"


class Direction(StrEnum):
    """Who started the interaction."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class UnknownCallerAction(StrEnum):
    """SPEC T4: what a classic-mode call from an unknown caller does."""

    AUTO_LEAD = "auto_lead"
    OFFER_IN_CARD = "offer_in_card"


class CreateFor(StrEnum):
    """SPEC T5: for which call directions a number creates items."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"
    ALL = "all"


class CrmMode(StrEnum):
    """SPEC T3: classic (with leads) or simple (without leads)."""

    CLASSIC = "classic"
    SIMPLE = "simple"


class DealCreationMode(StrEnum):
    """SPEC T12: a new client's deal comes with a contact or with a company."""

    CONTACT = "contact"
    COMPANY = "company"
