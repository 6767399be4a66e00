"""T11: who is responsible for a new client's lead after the answering employee transfers the call."""

from __future__ import annotations

from gateway.crm_bridge.linking.model import Action, LinkPlan, TransferDecision


def on_transfer(plan: LinkPlan, *, lead_created_by_this_call: bool, transferred_to: int) -> TransferDecision:
    """The lead's responsible after a manual transfer to `transferred_to`.

    Changes only when the number's option was on when the call was decided (recorded in the plan as
    `transfer_moves_responsible`) AND the lead was created by this call (automatically, or by the
    employee from the call card). A known client's call — attached, or a repeat lead — changes nothing.
    """
    if not plan.transfer_moves_responsible:
        return TransferDecision(False, plan.responsible_id, ("T11",),
                                "the number does not move the responsible on transfer")
    if plan.action not in (Action.CREATE_LEAD, Action.OFFER_IN_CARD) or not lead_created_by_this_call:
        return TransferDecision(False, plan.responsible_id, ("T11",),
                                "no lead was created for a new client by this call")
    if transferred_to == plan.responsible_id:
        return TransferDecision(False, plan.responsible_id, ("T11",),
                                "the call went to the lead's responsible already")
    return TransferDecision(True, transferred_to, ("T11",),
                            f"the lead created by this call now belongs to employee {transferred_to}")
