"""The linking engine's vocabulary: what goes in (`Interaction`) and what comes out (`LinkPlan`).

Plain frozen dataclasses, no I/O. Settings values are plain strings (as stored in the database) checked
against the enums below when a settings object is built, so a misconfigured number fails loudly at the
edge instead of silently taking a wrong branch in `decide`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# Shared with storage, defined once; re-exported because the engine's callers import them from here.
from gateway.vocabulary import Channel as Channel
from gateway.vocabulary import CreateFor as CreateFor
from gateway.vocabulary import CrmMode as CrmMode
from gateway.vocabulary import DealCreationMode as DealCreationMode
from gateway.vocabulary import Direction as Direction
from gateway.vocabulary import ItemType as ItemType
from gateway.vocabulary import UnknownCallerAction as UnknownCallerAction


class ItemStatus(StrEnum):
    """Item status; contacts and companies are always active, deals are active or closed."""

    ACTIVE = "active"
    CONVERTED = "converted"
    CLOSED = "closed"


class Action(StrEnum):
    """The outcome of `decide`."""

    CREATE_LEAD = "create_lead"
    CREATE_DEAL = "create_deal"
    ATTACH = "attach"
    OFFER_IN_CARD = "offer_in_card"
    RECORD_ONLY = "record_only"
    NOTHING = "nothing"
    # A manual save (M3) the rules forbid (M4, T8): the caller answers with the plan's explanation.
    REFUSED = "refused"


def _check_choice(name: str, value: str, allowed: type[StrEnum]) -> None:
    # The enum's value map is a dict: iterating the enum per check cost more than the plans themselves.
    if value not in allowed._value2member_map_:
        choices = ", ".join(member.value for member in allowed)
        raise ValueError(f"{name} must be one of {choices}; got {value!r}")


@dataclass(frozen=True, order=True)
class ItemRef:
    """A reference to one CRM item."""

    type: str
    id: int

    def __post_init__(self) -> None:
        _check_choice("ItemRef.type", self.type, ItemType)
        if isinstance(self.id, bool) or not isinstance(self.id, int):
            raise ValueError(f"ItemRef.id must be an int; got {self.id!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"type": str(self.type), "id": self.id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemRef:
        """Inverse of `to_dict`; raises ValueError on malformed input."""
        try:
            return cls(type=data["type"], id=data["id"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"an item reference needs 'type' and 'id'; got {data!r}") from exc


@dataclass(frozen=True)
class KnownItem:
    """An existing CRM item matching the party, with its responsible and status."""

    ref: ItemRef
    responsible_id: int | None
    status: str = ItemStatus.ACTIVE

    def __post_init__(self) -> None:
        _check_choice("KnownItem.status", self.status, ItemStatus)

    @property
    def is_active(self) -> bool:
        """True for active leads and deals and for every contact and company."""
        return self.status == ItemStatus.ACTIVE


@dataclass(frozen=True)
class PartyKnowledge:
    """What the CRM (and the employee directory) already knows about the other party."""

    items: tuple[KnownItem, ...] = ()
    is_employee: bool = False
    is_exception: bool = False


@dataclass(frozen=True)
class ChannelSettings:
    """A number's or a mailbox's CRM-integration settings.

    `integration` is a mailbox's CRM-integration switch (M1): off, nothing is saved automatically, known
    clients included; numbers leave it on. `create_items` creates items for new parties (M1's second
    switch for a mailbox). `spam_folder` is a mailbox's *move spam to folder* (M2); naming the inbox
    stops every automatic save of that mailbox.
    """

    create_items: bool = True
    unknown_caller_action: str = UnknownCallerAction.AUTO_LEAD
    create_for: str = CreateFor.ALL
    source_id: int | None = None
    queue_member_ids: tuple[int, ...] = ()
    route_known_to_responsible: bool = False
    change_responsible_on_transfer: bool = False
    integration: bool = True
    spam_folder: str | None = None

    @property
    def spam_goes_to_inbox(self) -> bool:
        """M2: the spam folder is the inbox itself (IMAP's INBOX name is case-insensitive, RFC 3501 5.1)."""
        return self.spam_folder is not None and self.spam_folder.strip().upper() == "INBOX"

    def __post_init__(self) -> None:
        _check_choice("unknown_caller_action", self.unknown_caller_action, UnknownCallerAction)
        _check_choice("create_for", self.create_for, CreateFor)


@dataclass(frozen=True)
class CrmModeSettings:
    """The CRM-wide settings that steer linking."""

    mode: str = CrmMode.CLASSIC
    deal_pipeline_id: int | None = None
    deal_creation_mode: str = DealCreationMode.CONTACT
    repeat_sales: bool = False
    legacy_lead_mode: bool = False

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, CrmMode)
        _check_choice("deal_creation_mode", self.deal_creation_mode, DealCreationMode)


@dataclass(frozen=True)
class Interaction:
    """One call or email, with everything `decide` needs to know about it.

    `agent_id` is the employee on our side when already known (who placed an outbound call); a lead
    created by an outbound call goes to them rather than to the queue's first member.
    `inactive_employee_ids` names the deactivated employees among those the decision may name (queue
    members, the responsibles of the party's items, the agent): none of them is ever made responsible.
    `manual_save` is an employee saving one email by hand (M3): the same rules decide the binding, the
    automatic-save switches (M1, M2) do not apply, and what may never be saved (M4, T8) is REFUSED.
    `thread_items` are the items the message this one answers is bound to (M12, from In-Reply-To /
    References); a reply is bound to them.
    """

    key: str
    channel: Channel
    direction: Direction
    party_phone: str | None
    party_email: str | None
    settings: ChannelSettings
    crm: CrmModeSettings
    knowledge: PartyKnowledge
    agent_id: int | None = None
    inactive_employee_ids: frozenset[int] = frozenset()
    manual_save: bool = False
    thread_items: tuple[KnownItem, ...] = ()

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("Interaction.key must name the call or email (e.g. 'call:<Call-ID>')")
        _check_choice("channel", self.channel, Channel)
        _check_choice("direction", self.direction, Direction)
        inactive = frozenset(self.inactive_employee_ids)
        if any(isinstance(i, bool) or not isinstance(i, int) for i in inactive):
            raise ValueError(f"inactive_employee_ids must hold employee ids (ints); got {sorted(map(repr, inactive))}")
        object.__setattr__(self, "inactive_employee_ids", inactive)

    def is_active(self, employee_id: int) -> bool:
        """False for a deactivated employee: they are never made responsible (T10, T7)."""
        return employee_id not in self.inactive_employee_ids

    def active_of(self, employee_ids: tuple[int, ...]) -> tuple[int, ...]:
        """`employee_ids` without the deactivated ones, in their order (`is_active` for each)."""
        inactive = self.inactive_employee_ids
        # Asked on every call, of queue groups of any size: most have nobody deactivated in them.
        if inactive.isdisjoint(employee_ids):
            return employee_ids
        return tuple(employee_id for employee_id in employee_ids if self.is_active(employee_id))


@dataclass(frozen=True)
class LinkPlan:
    """What to do in the CRM for one interaction, and the SPEC rules that say so.

    `attach_to` lists existing items the interaction's activity is bound to (for a repeat lead: the
    client the new lead belongs to). T11 among the `rule_ids` records for later that the number's
    option was on and the plan may create a lead for a new client during this call
    (`transfer_moves_responsible`): the rule ids are the one source of both the plan's behaviour and
    its explanation.
    """

    interaction_key: str
    action: Action
    create: tuple[str, ...] = ()
    attach_to: tuple[ItemRef, ...] = ()
    responsible_id: int | None = None
    source_id: int | None = None
    pipeline_id: int | None = None
    record_activity: bool = False
    rule_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("LinkPlan.action", self.action, Action)
        for item_type in self.create:
            _check_choice("LinkPlan.create", item_type, ItemType)
        if not self.rule_ids:
            raise ValueError("a LinkPlan must carry the rule ids that produced it (SPEC C1)")

    @property
    def transfer_moves_responsible(self) -> bool:
        """T11 is armed: a manual transfer moves the lead this call creates to the transferee."""
        return "T11" in self.rule_ids

    @property
    def creates_anything(self) -> bool:
        """True when applying the plan creates at least one CRM item."""
        return bool(self.create)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored as Decision.plan and returned by the admin API."""
        return {
            "interaction_key": self.interaction_key,
            "action": str(self.action),
            "create": [str(t) for t in self.create],
            "attach_to": [ref.to_dict() for ref in self.attach_to],
            "responsible_id": self.responsible_id,
            "source_id": self.source_id,
            "pipeline_id": self.pipeline_id,
            "record_activity": self.record_activity,
            "rule_ids": list(self.rule_ids),
            "transfer_moves_responsible": self.transfer_moves_responsible,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinkPlan:
        """Inverse of `to_dict`; raises ValueError saying what is wrong with malformed input."""
        try:
            rule_ids = tuple(str(r) for r in data["rule_ids"])
            if data.get("transfer_moves_responsible") and "T11" not in rule_ids:
                # Decisions stored before T11 was a rule id of its own carried it as a separate flag.
                rule_ids += ("T11",)
            return cls(
                interaction_key=str(data["interaction_key"]),
                action=Action(data["action"]),
                create=tuple(str(t) for t in data.get("create", ())),
                attach_to=tuple(ItemRef.from_dict(r) for r in data.get("attach_to", ())),
                responsible_id=data.get("responsible_id"),
                source_id=data.get("source_id"),
                pipeline_id=data.get("pipeline_id"),
                record_activity=bool(data.get("record_activity", False)),
                rule_ids=rule_ids,
                notes=tuple(str(n) for n in data.get("notes", ())),
            )
        except KeyError as exc:
            raise ValueError(f"a stored LinkPlan lacks the field {exc.args[0]!r}") from exc
        except TypeError as exc:
            raise ValueError(f"malformed LinkPlan: {exc}") from exc


@dataclass(frozen=True)
class TransferDecision:
    """T11's answer for a manual transfer: the new responsible, or unchanged."""

    changed: bool
    responsible_id: int | None
    rule_ids: tuple[str, ...]
    reason: str
