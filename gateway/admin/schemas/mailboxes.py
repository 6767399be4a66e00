"""Mailboxes connected to the CRM (SPEC M1, M2, M5, M8): the IMAP secret is write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from gateway.admin.schemas.common import Out, RowId, Secret, ShortText, Strict

TlsMode = Literal["tls", "none"]
Folders = Annotated[list[ShortText], Field(min_length=1, max_length=20, description="IMAP folders to sync")]
Port = Annotated[int, Field(ge=1, le=65535)]
SmtpTlsMode = Literal["tls", "starttls", "none"]


class MailboxCreate(Strict):
    """A mailbox to connect; the caller becomes the employee who connected it (M5)."""

    address: ShortText
    imap_host: ShortText
    imap_port: Port = 993
    tls_mode: TlsMode = "tls"
    login: ShortText
    secret: Secret = Field(description="IMAP password; stored, never returned")
    folders: Folders = ["INBOX"]
    spam_folder: ShortText | None = Field(None, description="M2: naming the inbox stops automatic saving")
    crm_integration: bool = False
    create_items_for_new: bool = True
    source_id: RowId | None = None
    queue_group_id: RowId | None = None
    route_known_to_responsible: bool = False
    first_sync_days: Annotated[int, Field(ge=0, le=3650)] = 30
    access_employee_ids: Annotated[list[RowId], Field(max_length=500)] = []
    smtp_host: ShortText | None = Field(None, description="this mailbox's SMTP relay; none: the [mail] relay")
    smtp_port: Port | None = None
    smtp_tls_mode: SmtpTlsMode = "starttls"
    smtp_login: ShortText | None = None
    smtp_secret: Secret | None = Field(None, description="SMTP password; stored, never returned")


class MailboxUpdate(Strict):
    """A partial change; `secret` replaces the stored one, `access_employee_ids` the access list."""

    imap_host: ShortText | None = None
    imap_port: Port | None = None
    tls_mode: TlsMode | None = None
    login: ShortText | None = None
    secret: Secret | None = None
    folders: Folders | None = None
    spam_folder: ShortText | None = None
    crm_integration: bool | None = None
    create_items_for_new: bool | None = None
    source_id: RowId | None = None
    queue_group_id: RowId | None = None
    route_known_to_responsible: bool | None = None
    first_sync_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    access_employee_ids: Annotated[list[RowId], Field(max_length=500)] | None = None
    smtp_host: ShortText | None = None
    smtp_port: Port | None = None
    smtp_tls_mode: SmtpTlsMode | None = None
    smtp_login: ShortText | None = None
    smtp_secret: Secret | None = None


class MailboxOut(Out):
    """A mailbox as the API shows it: its settings and sync state, never its secret."""

    id: int
    address: str
    imap_host: str
    imap_port: int
    tls_mode: str
    login: str
    secret_set: bool
    folders: list[str]
    spam_folder: str | None
    crm_integration: bool
    create_items_for_new: bool
    source_id: int | None
    queue_group_id: int | None
    route_known_to_responsible: bool
    first_sync_days: int
    connected_by_id: int | None
    access_employee_ids: list[int]
    smtp_host: str | None
    smtp_port: int | None
    smtp_tls_mode: str
    smtp_login: str | None
    smtp_secret_set: bool
    state: str
    last_error: str | None
    failures: int
    next_attempt_at: datetime | None
    last_sync_at: datetime | None


class SavedMailOut(Out):
    """The outcome of saving one mail to the CRM by hand (M3)."""

    message_id: int
    interaction_key: str
    action: str
    rule_ids: list[str]
