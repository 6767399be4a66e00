"""THE linking engine for calls and mail (SPEC C1): pure, no database, no I/O.

`decide(Interaction) -> LinkPlan` applies the SPEC rules in the order documented in
`gateway.crm_bridge.linking.engine`; `ring_responsible` is T7's routing half (whom an inbound call rings
first, then the queue group); `on_transfer` applies T11 later in the call; `explain` renders a plan's
rule ids as sentences; `bindings_after_conversion` is T13's binding rule for the CRM service.
"""

from gateway.crm_bridge.linking.conversion import Binding, bindings_after_conversion
from gateway.crm_bridge.linking.engine import STEPS, active_queue, decide
from gateway.crm_bridge.linking.explain import explain, explain_lines
from gateway.crm_bridge.linking.model import (
    Action,
    Channel,
    ChannelSettings,
    CreateFor,
    CrmMode,
    CrmModeSettings,
    DealCreationMode,
    Direction,
    Interaction,
    ItemRef,
    ItemStatus,
    ItemType,
    KnownItem,
    LinkPlan,
    PartyKnowledge,
    TransferDecision,
    UnknownCallerAction,
)
from gateway.crm_bridge.linking.ringing import RULE_QUEUE_GROUP, RingPlan, explain_ring, ring_responsible
from gateway.crm_bridge.linking.transfer import on_transfer

__all__ = [
    "RULE_QUEUE_GROUP",
    "STEPS",
    "Action",
    "Binding",
    "Channel",
    "ChannelSettings",
    "CreateFor",
    "CrmMode",
    "CrmModeSettings",
    "DealCreationMode",
    "Direction",
    "Interaction",
    "ItemRef",
    "ItemStatus",
    "ItemType",
    "KnownItem",
    "LinkPlan",
    "PartyKnowledge",
    "RingPlan",
    "TransferDecision",
    "UnknownCallerAction",
    "active_queue",
    "bindings_after_conversion",
    "decide",
    "explain",
    "explain_ring",
    "explain_lines",
    "on_transfer",
    "ring_responsible",
]
