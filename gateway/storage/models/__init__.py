"""Every gateway table, importable from one place: `from gateway.storage.models import Lead, ...`.

Importing this package registers every model on `gateway.storage.base.metadata`.
"""

from gateway.storage.base import Base, metadata, utcnow
from gateway.storage.models.activity import Activity, ActivityBinding, TimelineEntry
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
    CreateFor,
    CrmMode,
    DealCreationMode,
    DealStatus,
    ExceptionKind,
    ItemType,
    LeadStatus,
    NumberKind,
    OutboxStatus,
    PartyItemType,
    RightLevel,
    UnknownCallerAction,
)
from gateway.storage.models.mail import (
    Mailbox,
    MailboxAccess,
    MailboxState,
    MailDirection,
    MailFolderState,
    MailMessage,
    MailThreadRef,
    OutgoingMail,
    SmtpStatus,
    TlsMode,
)
from gateway.storage.models.registrations import RegistrarBinding
from gateway.storage.models.reliability import Decision, IdempotencyKey, OutboxEntry
from gateway.storage.models.settings import CRM_SETTINGS_ID, CrmSettings, ExceptionEntry, Pipeline, Source
from gateway.storage.models.telephony import Number, QueueGroup, QueueMember

__all__ = [
    "CRM_SETTINGS_ID",
    "Activity",
    "ActivityBinding",
    "ActivityDirection",
    "ActivityKind",
    "AnyAddressCreates",
    "ApiToken",
    "Base",
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
    "MailDirection",
    "MailFolderState",
    "MailMessage",
    "MailThreadRef",
    "Mailbox",
    "MailboxAccess",
    "MailboxState",
    "Number",
    "NumberKind",
    "OutboxEntry",
    "OutboxStatus",
    "OutgoingMail",
    "PartyItemType",
    "Pipeline",
    "QueueGroup",
    "QueueMember",
    "RegistrarBinding",
    "RightLevel",
    "SmtpStatus",
    "Source",
    "TimelineEntry",
    "TlsMode",
    "UnknownCallerAction",
    "metadata",
    "utcnow",
]
