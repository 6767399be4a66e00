"""Mail: connected mailboxes (SPEC M1, M2, M5, M8), the messages synced from them or sent from the CRM
(M6, M12), per-folder IMAP sync state, and outgoing mail with its SMTP status (O1-O6).

`Mailbox.secret` and `Mailbox.smtp_secret` are secrets: never log them, never return them from the API.
`MailMessage.message_key` is the Message-ID (or a synthetic key for a message without one): UNIQUE, so
one message is saved once however many folders or mailboxes hold it (M12).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from gateway.storage.base import Base, UtcDateTime, check_choice, enum_check, utcnow
from gateway.storage.models.enums import ItemType


class TlsMode(StrEnum):
    """How a mail connection is secured: implicit TLS, STARTTLS, or none (loopback/test servers)."""

    TLS = "tls"
    STARTTLS = "starttls"
    NONE = "none"


class MailboxState(StrEnum):
    """The sync's view of a mailbox: never tried, syncing fine, or failing (with a reason, retried)."""

    NEW = "new"
    OK = "ok"
    FAILING = "failing"


class SmtpStatus(StrEnum):
    """Where an outgoing mail is: waiting for the relay, accepted by it, or refused for good."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class MailDirection(StrEnum):
    """Received into a mailbox or sent from the CRM."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Mailbox(Base):
    """A mailbox connected to the CRM and its CRM-integration settings."""

    __tablename__ = "mailboxes"
    __table_args__ = (
        enum_check("tls_mode", TlsMode),
        enum_check("smtp_tls_mode", TlsMode),
        enum_check("state", MailboxState),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(sa.String(320), unique=True)
    imap_host: Mapped[str] = mapped_column(sa.String(255))
    imap_port: Mapped[int] = mapped_column(default=993, server_default="993")
    tls_mode: Mapped[str] = mapped_column(sa.String(8), default=TlsMode.TLS.value, server_default="tls")
    login: Mapped[str] = mapped_column(sa.String(320))
    secret: Mapped[str] = mapped_column(sa.String(1024), default="")
    folders: Mapped[list[str]] = mapped_column(sa.JSON(), default=lambda: ["INBOX"])
    spam_folder: Mapped[str | None] = mapped_column(sa.String(255))
    crm_integration: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    create_items_for_new: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    source_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sources.id", ondelete="SET NULL"))
    queue_group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("queue_groups.id", ondelete="SET NULL"))
    route_known_to_responsible: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    connected_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("employees.id", ondelete="SET NULL"))
    # M13's turn: the queue member who got the last item created from this mailbox's mail; the next in
    # turn is the member after them in queue order (an employee, not a position, so editing the queue
    # keeps the turn where it was).
    last_assigned_id: Mapped[int | None] = mapped_column(sa.ForeignKey("employees.id", ondelete="SET NULL"))
    first_sync_days: Mapped[int] = mapped_column(default=30, server_default="30")
    # SMTP relay of this mailbox; NULL host: the [mail] relay of the configuration.
    smtp_host: Mapped[str | None] = mapped_column(sa.String(255))
    smtp_port: Mapped[int | None] = mapped_column()
    smtp_tls_mode: Mapped[str] = mapped_column(sa.String(8), default=TlsMode.STARTTLS.value, server_default="starttls")
    smtp_login: Mapped[str | None] = mapped_column(sa.String(320))
    smtp_secret: Mapped[str | None] = mapped_column(sa.String(1024))
    state: Mapped[str] = mapped_column(sa.String(8), default=MailboxState.NEW.value, server_default="new")
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_sync_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    access: Mapped[list[MailboxAccess]] = relationship(
        back_populates="mailbox", cascade="all, delete-orphan", lazy="selectin", order_by="MailboxAccess.employee_id"
    )

    @validates("tls_mode", "smtp_tls_mode")
    def _check_tls(self, key: str, value: str) -> str:
        return check_choice(TlsMode, key, value)

    @validates("state")
    def _check_state(self, key: str, value: str) -> str:
        return check_choice(MailboxState, key, value)


class MailboxAccess(Base):
    """An employee who may read a mailbox and save its mail to the CRM by hand (M1, M3)."""

    __tablename__ = "mailbox_access"

    mailbox_id: Mapped[int] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    employee_id: Mapped[int] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    mailbox: Mapped[Mailbox] = relationship(back_populates="access")


class MailFolderState(Base):
    """Where the sync of one folder stands: its UIDVALIDITY and the highest UID already saved."""

    __tablename__ = "mail_folder_state"

    mailbox_id: Mapped[int] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    folder: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(sa.BigInteger())
    last_uid: Mapped[int] = mapped_column(sa.BigInteger(), default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class MailMessage(Base):
    """One message, received or sent, stored once (M12), with its three times (M6) and its raw bytes."""

    __tablename__ = "mail_messages"
    __table_args__ = (enum_check("direction", MailDirection),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    message_id: Mapped[str | None] = mapped_column(sa.String(998))
    thread_key: Mapped[str] = mapped_column(sa.String(255), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(sa.String(998))
    mailbox_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("mailboxes.id", ondelete="SET NULL"), index=True
    )
    folder: Mapped[str | None] = mapped_column(sa.String(255))
    uid: Mapped[int | None] = mapped_column(sa.BigInteger())
    direction: Mapped[str] = mapped_column(sa.String(8))
    from_address: Mapped[str | None] = mapped_column(sa.String(320), index=True)
    from_name: Mapped[str | None] = mapped_column(sa.String(300))
    to_addresses: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    cc_addresses: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    subject: Mapped[str] = mapped_column(sa.String(998), default="")
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    received_zone: Mapped[str | None] = mapped_column(sa.String(8))
    arrived_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    interaction_key: Mapped[str] = mapped_column(sa.String(255), index=True)
    defects: Mapped[list[str]] = mapped_column(sa.JSON(), default=list)
    size: Mapped[int] = mapped_column(sa.BigInteger(), default=0)
    raw: Mapped[bytes] = mapped_column(sa.LargeBinary())

    @validates("direction")
    def _check_direction(self, key: str, value: str) -> str:
        return check_choice(MailDirection, key, value)


class MailThreadRef(Base):
    """The thread index (M12): each Message-ID a stored message names in In-Reply-To or References."""

    __tablename__ = "mail_thread_refs"

    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("mail_messages.id", ondelete="CASCADE"), primary_key=True
    )
    ref_key: Mapped[str] = mapped_column(sa.String(255), primary_key=True, index=True)


class OutgoingMail(Base):
    """A mail sent from a CRM item through the SMTP relay, with its SMTP status (O1-O6)."""

    __tablename__ = "outgoing_mail"
    __table_args__ = (enum_check("status", SmtpStatus), enum_check("item_type", ItemType))

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(sa.ForeignKey("mail_messages.id", ondelete="CASCADE"), unique=True)
    mailbox_id: Mapped[int | None] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="SET NULL"))
    item_type: Mapped[str] = mapped_column(sa.String(16))
    item_id: Mapped[int] = mapped_column()
    sender_id: Mapped[int | None] = mapped_column(sa.ForeignKey("employees.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(sa.String(8), default=SmtpStatus.QUEUED.value)
    smtp_reply: Mapped[str | None] = mapped_column(sa.String(1000))
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    extra: Mapped[dict[str, Any]] = mapped_column(sa.JSON(), default=dict)
