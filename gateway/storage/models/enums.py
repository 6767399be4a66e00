"""The short string values stored in enum-like columns (a CHECK constraint enforces each set)."""

from __future__ import annotations

from enum import StrEnum

# The words the linking engine decides with are defined once, in gateway.vocabulary.
from gateway.vocabulary import Channel as ActivityKind  # noqa: F401
from gateway.vocabulary import CreateFor as CreateFor
from gateway.vocabulary import CrmMode as CrmMode
from gateway.vocabulary import DealCreationMode as DealCreationMode
from gateway.vocabulary import Direction as ActivityDirection  # noqa: F401
from gateway.vocabulary import ItemType as ItemType
from gateway.vocabulary import UnknownCallerAction as UnknownCallerAction


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


class OutboxStatus(StrEnum):
    """An outbox entry's state (SPEC C2, C4)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class QueueStrategy(StrEnum):
    """SPEC R2: how a queue group rings its members."""

    IN_ORDER = "in_order"
    EVENLY = "evenly"
    EVERYBODY = "everybody"


class NoAnswerAction(StrEnum):
    """SPEC R3: what a queue group's no-answer chain does when no member answered."""

    HANGUP = "hangup"
    QUEUE_GROUP = "queue_group"
    EMPLOYEE = "employee"
    OUTSIDE_NUMBER = "outside_number"


class CallOutcome(StrEnum):
    """SPEC R7: how a call in the call log ended (`ringing` while it has not)."""

    RINGING = "ringing"
    ANSWERED = "answered"
    MISSED = "missed"
    REJECTED = "rejected"
    FAILED = "failed"


# The trunk words below are stored copies of gateway.trunks.model's (storage stays below the domain);
# a test holds the two sets of values equal.
class TrunkKind(StrEnum):
    """SPEC T1: a SIP provider's trunk (rented numbers) or a customer's own SIP PBX."""

    PROVIDER = "provider"
    PBX = "pbx"


class TrunkTransport(StrEnum):
    """How SIP reaches the trunk."""

    UDP = "udp"
    TCP = "tcp"


class TrunkTrust(StrEnum):
    """How an INVITE is recognised as coming from the trunk."""

    SOURCE = "source"
    REGISTRATION = "registration"
    DIGEST = "digest"


class TrunkNumberHeader(StrEnum):
    """Where the dialled number of a trunk's INVITE may be read (a trunk stores an ordered list)."""

    REQUEST_URI = "request_uri"
    TO = "to"
    P_CALLED_PARTY_ID = "p_called_party_id"
    DIVERSION = "diversion"


class CallerIdFormat(StrEnum):
    """How the trunk wants our caller ID written."""

    E164_PLUS = "e164_plus"
    E164 = "e164"
    NATIONAL = "national"
