"""`decide`: an ordered list of named pure steps; the first step that answers makes the plan.

Step order (SPEC rule ids in brackets):

1. screen_employee   [T9 calls, M4 mail] the party is one of our employees → NOTHING: not recorded in
                     the CRM at all; an employee's manual save of such a mail [M3] is REFUSED (M4's
                     "error saving the email to the CRM").
2. screen_exception  [T8] the party is on the exception list → RECORD_ONLY: the gateway keeps its call
                     log / mailbox copy, the CRM gets no item and no activity; a manual save is REFUSED.
3. integration_gate  [M1] the mailbox's CRM integration is off, or [M2] its spam folder is the inbox
                     → RECORD_ONLY: nothing is saved automatically, known clients included, until an
                     employee saves a mail by hand (a manual save passes this gate).
4. reply_to_thread   [M12] a reply is bound to the items of the mail it answers; responsible = their
                     owner (an inactive one hands over to T10 as below).
5. known_party       the CRM holds items for the party:
                     [M11] repeat sales on, and no request (active lead/deal) in progress → a repeat
                     lead (simple mode: a repeat deal) for the client, created even when the number or
                     mailbox creates nothing for new parties; responsible = the client's owner;
                     [M11] repeat sales off, legacy lead mode on → the most recent active deal, else
                     (no active lead either) the most recent closed lead;
                     [M8] inbound mail, option "route to the responsible" on, and the owner is not in
                     the mailbox's queue → a new lead (simple: deal) for the queue's first member;
                     [T7] otherwise ATTACH to the party's items (rule in `party`); responsible = owner.
                     An owner who was deactivated is never made responsible: the SPEC is silent on
                     that case, so the number's queue group rule [T10] picks the responsible instead
                     (for mail with M8 on, an inactive owner counts as outside the queue).
6. creation_gate     the party is unknown and this channel creates nothing for it → RECORD_ONLY:
                     [M1] the mailbox creates no items for new senders (a manual save passes); [T5]
                     the number does not create items for this direction. There is no item to hold an
                     activity, so none is recorded; the call stays in the gateway's call log.
7. unusable_party    [R6] the party has no usable number or address (anonymous, withheld,
                     unparseable) → RECORD_ONLY: an item made for it could never be matched again, so
                     none is created, whatever T4/T12 say; the call log and the call card still show it.
8. create_for_new    [T3] classic: [T4a] auto_lead → CREATE_LEAD, [T4b] offer_in_card → OFFER_IN_CARD
                     (nothing created until the employee acts in the call card); simple: [T12]
                     CREATE_DEAL in the configured pipeline (None → the default pipeline, resolved by
                     the CRM service) with a contact or a company. Created items carry the number's
                     source [T6]; their responsible is the queue's first ACTIVE member [T10], or for
                     an outbound call the employee who placed it; for mail the mailbox's queue comes
                     in turn order, so it is the next active member in turn [M13]. [T11] the number
                     moves the new lead to the transferee on a manual transfer (armed in the plan's rule ids).

A manual save's plan (anything but REFUSED) carries M3 last: the binding followed the same rules as an
automatic save, only the automatic-save switches were passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from gateway.crm_bridge.linking import party
from gateway.crm_bridge.linking.model import (
    Action,
    Channel,
    CreateFor,
    CrmMode,
    Direction,
    Interaction,
    ItemType,
    LinkPlan,
    UnknownCallerAction,
)

Step = Callable[[Interaction], LinkPlan | None]

#: How a plan's note about a deactivated employee ends (T10: they are never made responsible).
INACTIVE_NOTE = ", is inactive: never made responsible"

#: M4's error, the note of every REFUSED plan.
REFUSED_NOTE = "error saving the email to the CRM: only clients' mail can be saved"


def screen_employee(interaction: Interaction) -> LinkPlan | None:
    """T9 / M4: our own employees are never recorded in the CRM; saving their mail by hand is refused."""
    if not interaction.knowledge.is_employee:
        return None
    rule = "T9" if interaction.channel == Channel.CALL else "M4"
    if interaction.manual_save:
        return LinkPlan(interaction.key, Action.REFUSED, rule_ids=(rule, "M3"), notes=(REFUSED_NOTE,))
    return LinkPlan(interaction.key, Action.NOTHING, rule_ids=(rule,))


def screen_exception(interaction: Interaction) -> LinkPlan | None:
    """T8: exception-list parties are logged by the gateway only; a manual save of their mail is refused."""
    if not interaction.knowledge.is_exception:
        return None
    if interaction.manual_save:
        return LinkPlan(interaction.key, Action.REFUSED, rule_ids=("T8", "M3"), notes=(REFUSED_NOTE,))
    return LinkPlan(interaction.key, Action.RECORD_ONLY, rule_ids=("T8",))


def integration_gate(interaction: Interaction) -> LinkPlan | None:
    """M1 / M2: a mailbox that saves nothing automatically; a manual save passes the gate."""
    settings = interaction.settings
    if interaction.manual_save:
        return None
    if not settings.integration:
        note = "the mailbox's CRM integration is off: an employee with access may save the mail by hand"
        return LinkPlan(interaction.key, Action.RECORD_ONLY, rule_ids=("M1",), notes=(note,))
    if settings.spam_goes_to_inbox:
        return LinkPlan(interaction.key, Action.RECORD_ONLY, rule_ids=("M2",))
    return None


def reply_to_thread(interaction: Interaction) -> LinkPlan | None:
    """M12: a reply is bound to the items of the mail it answers."""
    thread = interaction.thread_items
    if not thread:
        return None
    responsible, rules, notes = _active_or_queue(interaction, party.owner(thread), ("M12",))
    return LinkPlan(
        interaction.key,
        Action.ATTACH,
        attach_to=party.refs(thread),
        responsible_id=responsible,
        record_activity=True,
        rule_ids=rules,
        notes=notes,
    )


def known_party(interaction: Interaction) -> LinkPlan | None:
    """M11 then T7 for a party the CRM already holds."""
    knowledge = interaction.knowledge
    if not party.is_known(knowledge):
        return None
    if interaction.crm.repeat_sales:
        if not party.has_open_request(knowledge):
            return _repeat_request(interaction)
    elif interaction.crm.legacy_lead_mode:
        plan = _legacy_attachment(interaction)
        if plan is not None:
            return plan
    targets = party.attachment(knowledge)
    owner = party.owner(targets)
    if _client_outside_mail_queue(interaction, owner):
        return _new_request_for_queue(interaction)
    responsible, rules, notes = _active_or_queue(interaction, owner, ("T7",))
    return LinkPlan(
        interaction.key,
        Action.ATTACH,
        attach_to=party.refs(targets),
        responsible_id=responsible,
        record_activity=True,
        rule_ids=rules,
        notes=notes,
    )


def _client_outside_mail_queue(interaction: Interaction, owner: int | None) -> bool:
    # M8: for mail, the number's "route to the responsible" option means "keep the client with their
    # manager only while that manager is in the mailbox's queue" — a deactivated manager is not.
    return (
        interaction.channel == Channel.EMAIL
        and interaction.direction == Direction.INBOUND
        and interaction.settings.route_known_to_responsible
        and owner not in active_queue(interaction)
    )


def _active_or_queue(
    interaction: Interaction, owner: int | None, rules: tuple[str, ...]
) -> tuple[int | None, tuple[str, ...], tuple[str, ...]]:
    """The CRM's responsible when active; a deactivated one hands over to the queue group rule (T10)."""
    if owner is None or interaction.is_active(owner):
        return owner, rules, ()
    responsible, rule, notes = _new_item_responsible(interaction)
    return responsible, (*rules, rule), (_inactive_note(owner, "the client's responsible"), *notes)


def _inactive_note(employee_id: int, role: str) -> str:
    return f"{role}, employee {employee_id}{INACTIVE_NOTE}"


def _new_request_for_queue(interaction: Interaction) -> LinkPlan:
    responsible, rule, notes = _new_item_responsible(interaction)
    create: tuple[str, ...]
    if interaction.crm.mode == CrmMode.SIMPLE:
        action, create = Action.CREATE_DEAL, (ItemType.DEAL.value, interaction.crm.deal_creation_mode)
        rules: tuple[str, ...] = ("M8", "T12", "T6", rule)
    else:
        action, create, rules = Action.CREATE_LEAD, (ItemType.LEAD.value,), ("M8", "T6", rule)
    return LinkPlan(
        interaction.key,
        action,
        create=create,
        responsible_id=responsible,
        source_id=interaction.settings.source_id,
        pipeline_id=interaction.crm.deal_pipeline_id if action == Action.CREATE_DEAL else None,
        record_activity=True,
        rule_ids=rules,
        notes=("the client's responsible is not in the mailbox's queue: a new item for the queue", *notes),
    )


def _repeat_request(interaction: Interaction) -> LinkPlan:
    clients = party.clients(interaction.knowledge)
    owner = party.owner(clients) or party.owner(interaction.knowledge.items)
    rules = ["M11", "T6"]
    notes: tuple[str, ...] = ()
    if owner is None:
        responsible, rule, notes = _new_item_responsible(interaction)
        rules.append(rule)
    else:
        responsible, more, notes = _active_or_queue(interaction, owner, ())
        rules.extend(more)
    if interaction.crm.mode == CrmMode.SIMPLE:
        # A CRM without leads records a repeat sale as a repeat deal for the same client.
        create = (ItemType.DEAL.value,) if clients else (ItemType.DEAL.value, interaction.crm.deal_creation_mode)
        action, pipeline = Action.CREATE_DEAL, interaction.crm.deal_pipeline_id
        rules.insert(1, "T12")
        note = "repeat deal for the existing client (simple mode has no leads)"
    else:
        action, create, pipeline = Action.CREATE_LEAD, (ItemType.LEAD.value,), None
        note = "repeat lead for the existing client"
    return LinkPlan(
        interaction.key,
        action,
        create=create,
        attach_to=party.refs(clients),
        responsible_id=responsible,
        source_id=interaction.settings.source_id,
        pipeline_id=pipeline,
        record_activity=True,
        rule_ids=tuple(rules),
        notes=(note, *notes),
    )


def _legacy_attachment(interaction: Interaction) -> LinkPlan | None:
    knowledge = interaction.knowledge
    deals = party.of_type(knowledge, ItemType.DEAL, active=True)
    if deals:
        target, note = deals[0], "attached to the client's active deal (legacy lead mode)"
    elif not party.of_type(knowledge, ItemType.LEAD, active=True) and party.closed_leads(knowledge):
        target, note = party.closed_leads(knowledge)[0], "attached to the client's closed lead (legacy lead mode)"
    else:
        return None
    responsible, rules, notes = _active_or_queue(interaction, target.responsible_id, ("M11",))
    return LinkPlan(
        interaction.key,
        Action.ATTACH,
        attach_to=(target.ref,),
        responsible_id=responsible,
        record_activity=True,
        rule_ids=rules,
        notes=(note, *notes),
    )


def creation_gate(interaction: Interaction) -> LinkPlan | None:
    """M1 / T5: an unknown party on a channel or direction that creates nothing."""
    if not interaction.settings.create_items and not interaction.manual_save:
        note = "the mailbox creates no items for new senders: the mail may be saved by hand"
        return LinkPlan(interaction.key, Action.RECORD_ONLY, rule_ids=("M1",), notes=(note,))
    if not _creates_for(interaction.settings.create_for, interaction.direction):
        return LinkPlan(interaction.key, Action.RECORD_ONLY, rule_ids=("T5",))
    return None


def unusable_party(interaction: Interaction) -> LinkPlan | None:
    """R6: nothing is created for a party nobody could ever match again."""
    if interaction.party_phone is not None or interaction.party_email is not None:
        return None
    note = "the party has no usable number or address (anonymous, withheld or unparseable): never a new item"
    return LinkPlan(interaction.key, Action.RECORD_ONLY, rule_ids=("R6",), notes=(note,))


def _creates_for(create_for: str, direction: Direction) -> bool:
    if create_for == CreateFor.ALL:
        return True
    wanted = Direction.INBOUND if create_for == CreateFor.INCOMING else Direction.OUTBOUND
    return direction == wanted


def create_for_new(interaction: Interaction) -> LinkPlan:
    """T3 → T4a/T4b (classic) or T12 (simple) for a party the CRM does not know."""
    settings, crm = interaction.settings, interaction.crm
    responsible, rule, notes = _new_item_responsible(interaction)
    if crm.mode == CrmMode.SIMPLE:
        return LinkPlan(
            interaction.key,
            Action.CREATE_DEAL,
            create=(ItemType.DEAL.value, crm.deal_creation_mode),
            responsible_id=responsible,
            source_id=settings.source_id,
            pipeline_id=crm.deal_pipeline_id,
            record_activity=True,
            rule_ids=("T3", "T5", "T12", "T6", rule),
            notes=notes,
        )
    # T11 applies to the lead a new client's call creates; the rule id itself arms it for on_transfer.
    armed = settings.change_responsible_on_transfer and interaction.channel == Channel.CALL
    transfer = ("T11",) if armed else ()
    if settings.unknown_caller_action == UnknownCallerAction.OFFER_IN_CARD:
        # T10/T6 still apply to the lead the employee may create from the card; the service reads them
        # from the plan so that card-created items match auto-created ones.
        return LinkPlan(
            interaction.key,
            Action.OFFER_IN_CARD,
            responsible_id=responsible,
            source_id=settings.source_id,
            rule_ids=("T3", "T5", "T4b", *transfer),
            notes=notes,
        )
    return LinkPlan(
        interaction.key,
        Action.CREATE_LEAD,
        create=(ItemType.LEAD.value,),
        responsible_id=responsible,
        source_id=settings.source_id,
        record_activity=True,
        rule_ids=("T3", "T5", "T4a", "T6", rule, *transfer),
        notes=notes,
    )


def active_queue(interaction: Interaction) -> tuple[int, ...]:
    """The number's queue group without its deactivated members, in ring order."""
    return interaction.active_of(interaction.settings.queue_member_ids)


def _new_item_responsible(interaction: Interaction) -> tuple[int | None, str, tuple[str, ...]]:
    """T10: the agent of an outbound call, else the queue's first ACTIVE member; notes name the skipped.

    M13 for mail: the mailbox hands its queue over in turn order (the next member in turn first), so the
    same "first active member" is the next in turn; the rule id says which rule chose.
    """
    rule = "M13" if interaction.channel == Channel.EMAIL else "T10"
    agent = interaction.agent_id
    skipped: list[str] = []
    if interaction.direction == Direction.OUTBOUND and agent is not None:
        if interaction.is_active(agent):
            return agent, rule, ()
        skipped.append(_inactive_note(agent, "the employee who placed the call"))
    for member in interaction.settings.queue_member_ids:
        if interaction.is_active(member):
            return member, rule, tuple(skipped)
        skipped.append(_inactive_note(member, "queue member"))
    return None, rule, tuple(skipped)


STEPS: tuple[Step, ...] = (
    screen_employee,
    screen_exception,
    integration_gate,
    reply_to_thread,
    known_party,
    creation_gate,
    unusable_party,
)


def _first_answer(interaction: Interaction) -> LinkPlan | None:
    for step in STEPS:
        plan = step(interaction)
        if plan is not None:
            return plan
    return None


def decide(interaction: Interaction) -> LinkPlan:
    """The CRM outcome of one call or email, with the SPEC rule ids that produced it (SPEC C1)."""
    plan = _first_answer(interaction) or create_for_new(interaction)
    if interaction.manual_save and plan.action != Action.REFUSED:
        plan = replace(plan, rule_ids=(*plan.rule_ids, "M3"))
    return plan
