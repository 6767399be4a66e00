"""The call log (SPEC R7): one row per call, T8/T9 calls included, with its routing and CRM decisions.

Written by `gateway.storage.call_log` as the call happens; the items a call created or attached are
not copied here but read from the CRM tables by the call's `interaction_key` when the log is shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, validates

from gateway.storage.base import Base, UtcDateTime, check_choice, enum_check
from gateway.storage.models.enums import ActivityDirection, CallOutcome


class Call(Base):
    """One call: who, which number, when it started, was answered and ended, who answered, how it ended.

    `number` is the gateway number's E.164 (or the dialled text when no number matched, `number_id`
    NULL); `party_raw` the other party as signalled, `party_e164` the same in E.164 when it is a usable
    number (SPEC R6: NULL for anonymous, withheld or unparseable). `offered_ids`: the employees the call
    was offered to, in order. `status`: the final SIP status the caller got. `routing`: the routing
    decision ({"rule_ids", "notes", "explanation"}); `crm`: the CRM outcome ({"action", "rule_ids",
    "notes", "responsible_id"}), NULL until it is decided.
    """

    __tablename__ = "calls"
    __table_args__ = (
        enum_check("direction", ActivityDirection),
        enum_check("outcome", CallOutcome),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    call_id: Mapped[str] = mapped_column(sa.String(1024))
    direction: Mapped[str] = mapped_column(sa.String(8))
    number_id: Mapped[int | None] = mapped_column(sa.ForeignKey("numbers.id", ondelete="SET NULL"), index=True)
    number: Mapped[str] = mapped_column(sa.String(64))
    party_raw: Mapped[str] = mapped_column(sa.String(255))
    party_e164: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    answered_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("employees.id", ondelete="SET NULL"), index=True
    )
    offered_ids: Mapped[list[int]] = mapped_column(sa.JSON(), default=list)
    outcome: Mapped[str] = mapped_column(
        sa.String(16), default=CallOutcome.RINGING.value, server_default=CallOutcome.RINGING.value
    )
    status: Mapped[int | None] = mapped_column()
    routing: Mapped[dict[str, Any]] = mapped_column(sa.JSON(), default=dict)
    crm: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON())

    @validates("direction")
    def _check_direction(self, key: str, value: str) -> str:
        return check_choice(ActivityDirection, key, value)

    @validates("outcome")
    def _check_outcome(self, key: str, value: str) -> str:
        return check_choice(CallOutcome, key, value)
