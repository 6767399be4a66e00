"""Every gateway table, importable from one place: `from gateway.storage.models import Lead, ...`.

Importing this package registers every model on `gateway.storage.base.metadata`.
"""

from gateway.storage.base import Base, metadata, utcnow
from gateway.storage.models.activity import Activity, ActivityBinding, TimelineEntry
from gateway.storage.models.calls import Call
from gateway.storage.models.crm import (
    Company,
    CompanyContact,
    Contact,
    Deal,
    ItemEmail,
    ItemPhone,
    Lead,
)
from gateway.storage.models.employees import ApiToken, Employee, EmployeeEmail, EmployeePhone, EmployeeRight
from gateway.storage.models.enums import (
    ActivityDirection,
    ActivityKind,
    AnyAddressCreates,
    CallOutcome,
    CreateFor,
    CrmMode,
    DealCreationMode,
    DealStatus,
    ExceptionKind,
    ItemType,
    LeadStatus,
    NoAnswerAction,
    NumberKind,
    OutboxStatus,
    PartyItemType,
    QueueStrategy,
    RightLevel,
    UnknownCallerAction,
)
from gateway.storage.models.registrations import RegistrarBinding
from gateway.storage.models.reliability import Decision, IdempotencyKey, OutboxEntry
from gateway.storage.models.settings import CRM_SETTINGS_ID, CrmSettings, ExceptionEntry, Pipeline, Source
from gateway.storage.models.telephony import DEFAULT_RING_TIME_S, Number, QueueGroup, QueueMember

__all__ = [
    "CRM_SETTINGS_ID",
    "DEFAULT_RING_TIME_S",
    "Activity",
    "ActivityBinding",
    "ActivityDirection",
    "ActivityKind",
    "AnyAddressCreates",
    "ApiToken",
    "Base",
    "Call",
    "CallOutcome",
    "Company",
    "CompanyContact",
    "Contact",
    "CreateFor",
    "CrmMode",
    "CrmSettings",
    "Deal",
    "DealCreationMode",
    "DealStatus",
    "Decision",
    "Employee",
    "EmployeeEmail",
    "EmployeePhone",
    "EmployeeRight",
    "ExceptionEntry",
    "ExceptionKind",
    "IdempotencyKey",
    "ItemEmail",
    "ItemPhone",
    "ItemType",
    "Lead",
    "LeadStatus",
    "NoAnswerAction",
    "Number",
    "NumberKind",
    "OutboxEntry",
    "OutboxStatus",
    "PartyItemType",
    "Pipeline",
    "QueueGroup",
    "QueueMember",
    "QueueStrategy",
    "RegistrarBinding",
    "RightLevel",
    "Source",
    "TimelineEntry",
    "UnknownCallerAction",
    "metadata",
    "utcnow",
]
