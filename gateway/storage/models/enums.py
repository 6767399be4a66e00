"""The short string values stored in enum-like columns (a CHECK constraint enforces each set)."""

from __future__ import annotations

from enum import StrEnum


class ItemType(StrEnum):
    """A CRM item type (bindings, rights, timeline)."""

    LEAD = "lead"
    CONTACT = "contact"
    COMPANY = "company"
    DEAL = "deal"


class PartyItemType(StrEnum):
    """The item types that carry phones and emails (deals reach a party through contact/company)."""

    LEAD = "lead"
    CONTACT = "contact"
    COMPANY = "company"


class RightLevel(StrEnum):
    """How far an employee's view/edit right on an item type reaches."""

    NONE = "none"
    OWN = "own"
    ALL = "all"


class NumberKind(StrEnum):
    """SPEC T1: a DID rented from a provider trunk, or a number of a customer's own SIP PBX."""

    RENTED = "rented"
    SIP_PBX = "sip_pbx"


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
    """SPEC T12: a simple-mode deal is created together with a contact or a company."""

    CONTACT = "contact"
    COMPANY = "company"


class AnyAddressCreates(StrEnum):
    """SPEC O1: what mailing an address unknown to the CRM creates."""

    LEAD = "lead"
    CONTACT = "contact"


class ExceptionKind(StrEnum):
    """SPEC T8: an exception-list entry is a phone number or an email address."""

    PHONE = "phone"
    EMAIL = "email"


class LeadStatus(StrEnum):
    """A lead's life cycle."""

    ACTIVE = "active"
    CONVERTED = "converted"
    CLOSED = "closed"


class DealStatus(StrEnum):
    """A deal's life cycle."""

    ACTIVE = "active"
    CLOSED = "closed"


class ActivityKind(StrEnum):
    """What an activity records."""

    CALL = "call"
    EMAIL = "email"


class ActivityDirection(StrEnum):
    """The direction of the call or email an activity records."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class OutboxStatus(StrEnum):
    """An outbox entry's state (SPEC C2, C4)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
