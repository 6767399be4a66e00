"""The linking engine, one test per SPEC rule T3–T13 and M11 (C1: one engine, explainable outcomes)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gateway.crm_bridge.linking import (
    Action,
    Binding,
    Channel,
    ChannelSettings,
    CrmModeSettings,
    Direction,
    Interaction,
    ItemRef,
    KnownItem,
    LinkPlan,
    PartyKnowledge,
    bindings_after_conversion,
    decide,
    explain,
    on_transfer,
    ring_responsible,
)

QUEUE = (7, 8, 9)
SOURCE_CALL = 1


def known(item_type: str, item_id: int, responsible: int | None, status: str = "active") -> KnownItem:
    """A CRM item the party already has."""
    return KnownItem(ItemRef(item_type, item_id), responsible, status)


def call(
    *,
    direction: Direction = Direction.INBOUND,
    items: tuple[KnownItem, ...] = (),
    is_employee: bool = False,
    is_exception: bool = False,
    agent_id: int | None = None,
    channel: Channel = Channel.CALL,
    inactive: frozenset[int] = frozenset(),
    **settings: Any,
) -> Interaction:
    """An interaction from +33142685300 on a number with a queue (7, 8, 9) and source 1.

    `inactive` names deactivated employees. Keyword arguments name ChannelSettings or CrmModeSettings
    fields to override.
    """
    number_fields = set(ChannelSettings.__dataclass_fields__)
    number = ChannelSettings(
        create_items=True,
        unknown_caller_action="auto_lead",
        create_for="all",
        source_id=SOURCE_CALL,
        queue_member_ids=QUEUE,
        route_known_to_responsible=False,
        change_responsible_on_transfer=False,
    )
    number = replace(number, **{k: v for k, v in settings.items() if k in number_fields})
    crm = replace(CrmModeSettings(), **{k: v for k, v in settings.items() if k not in number_fields})
    return Interaction(
        key="call:abc@host",
        channel=channel,
        direction=direction,
        party_phone="+33142685300",
        party_email=None,
        settings=number,
        crm=crm,
        knowledge=PartyKnowledge(items=items, is_employee=is_employee, is_exception=is_exception),
        agent_id=agent_id,
        inactive_employee_ids=inactive,
    )


# --- T3: the CRM-wide mode chooses between leads and deals -------------------------------------------

def test_t3_classic_mode_creates_a_lead_and_simple_mode_a_deal() -> None:
    classic = decide(call(mode="classic"))
    simple = decide(call(mode="simple"))
    assert (classic.action, classic.create) == (Action.CREATE_LEAD, ("lead",))
    assert simple.action == Action.CREATE_DEAL and "lead" not in simple.create
    assert "T3" in classic.rule_ids and "T3" in simple.rule_ids


# --- T4: unknown caller, classic mode ----------------------------------------------------------------

def test_t4a_auto_lead_creates_one_lead_when_the_call_starts() -> None:
    plan = decide(call(unknown_caller_action="auto_lead"))
    assert plan.action == Action.CREATE_LEAD
    assert plan.create == ("lead",)
    assert plan.record_activity is True
    assert "T4a" in plan.rule_ids and "T4b" not in plan.rule_ids


def test_t4b_offer_in_card_creates_nothing_until_the_employee_acts() -> None:
    plan = decide(call(unknown_caller_action="offer_in_card"))
    assert plan.action == Action.OFFER_IN_CARD
    assert plan.create == () and plan.attach_to == ()
    assert plan.record_activity is False
    assert "T4b" in plan.rule_ids and "T4a" not in plan.rule_ids


# --- T5: which directions create items ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("create_for", "direction", "creates"),
    [
        ("incoming", Direction.INBOUND, True),
        ("incoming", Direction.OUTBOUND, False),
        ("outgoing", Direction.INBOUND, False),
        ("outgoing", Direction.OUTBOUND, True),
        ("all", Direction.INBOUND, True),
        ("all", Direction.OUTBOUND, True),
    ],
)
def test_t5_number_creates_items_only_for_its_directions(create_for: str, direction: Direction,
                                                          creates: bool) -> None:
    plan = decide(call(create_for=create_for, direction=direction))
    assert plan.creates_anything is creates
    if not creates:
        assert plan.action == Action.RECORD_ONLY
        assert plan.rule_ids == ("T5",)
        assert plan.record_activity is False and plan.attach_to == ()


def test_t5_does_not_stop_a_known_party_from_being_recorded() -> None:
    plan = decide(call(create_for="incoming", direction=Direction.OUTBOUND, items=(known("contact", 3, 11),)))
    assert plan.action == Action.ATTACH and plan.attach_to == (ItemRef("contact", 3),)


# --- T6: the number's source ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["classic", "simple"])
def test_t6_created_items_carry_the_numbers_source(mode: str) -> None:
    plan = decide(call(mode=mode, source_id=42))
    assert plan.creates_anything
    assert plan.source_id == 42
    assert "T6" in plan.rule_ids


# --- T7: known caller --------------------------------------------------------------------------------

def test_t7_known_caller_is_attached_to_existing_items_never_a_new_lead() -> None:
    items = (known("contact", 3, 11), known("deal", 20, 12), known("deal", 19, 13, status="closed"))
    interaction = call(items=items, route_known_to_responsible=True)
    plan = decide(interaction)
    assert plan.action == Action.ATTACH
    assert plan.create == ()
    assert set(plan.attach_to) == {ItemRef("contact", 3), ItemRef("deal", 20)}
    assert plan.responsible_id == 11
    assert plan.rule_ids == ("T7",)
    assert ring_responsible(interaction, plan, ring_timeout=20.0).responsible_id == 11
    without_option = call(items=items, route_known_to_responsible=False)
    assert ring_responsible(without_option, decide(without_option), ring_timeout=20.0).responsible_id is None


# --- T8: exception list -----------------------------------------------------------------------------

@pytest.mark.parametrize("items", [(), (known("contact", 3, 11),)])
def test_t8_exception_is_recorded_by_the_gateway_only(items: tuple[KnownItem, ...]) -> None:
    plan = decide(call(is_exception=True, items=items, repeat_sales=True))
    assert plan.action == Action.RECORD_ONLY
    assert plan.create == () and plan.attach_to == ()
    assert plan.record_activity is False
    assert plan.rule_ids == ("T8",)


# --- T9: employees ----------------------------------------------------------------------------------

@pytest.mark.parametrize("direction", list(Direction))
def test_t9_employee_numbers_are_never_recorded_in_the_crm(direction: Direction) -> None:
    plan = decide(call(is_employee=True, is_exception=True, direction=direction, items=(known("lead", 1, 7),)))
    assert plan.action == Action.NOTHING
    assert plan.create == () and plan.attach_to == () and plan.record_activity is False
    assert plan.rule_ids == ("T9",)


# --- T10: responsible of a new lead -----------------------------------------------------------------

def test_t10_new_lead_goes_to_the_first_queue_member() -> None:
    assert decide(call(queue_member_ids=(8, 7, 9))).responsible_id == 8
    assert decide(call(queue_member_ids=(9,))).responsible_id == 9
    assert decide(call(queue_member_ids=())).responsible_id is None
    outbound = decide(call(direction=Direction.OUTBOUND, agent_id=5))
    assert outbound.responsible_id == 5
    assert "T10" in outbound.rule_ids


# --- T11: responsible follows a manual transfer, new clients only ------------------------------------

def test_t11_transfer_moves_a_new_lead_only_when_the_option_is_on() -> None:
    plan = decide(call(change_responsible_on_transfer=True))
    moved = on_transfer(plan, lead_created_by_this_call=True, transferred_to=9)
    assert (moved.changed, moved.responsible_id) == (True, 9)
    assert "T11" in moved.rule_ids

    off = decide(call(change_responsible_on_transfer=False))
    assert on_transfer(off, lead_created_by_this_call=True, transferred_to=9).responsible_id == 7

    card = decide(call(change_responsible_on_transfer=True, unknown_caller_action="offer_in_card"))
    assert on_transfer(card, lead_created_by_this_call=False, transferred_to=9).changed is False
    assert on_transfer(card, lead_created_by_this_call=True, transferred_to=9).responsible_id == 9

    known_client = decide(call(change_responsible_on_transfer=True, items=(known("contact", 3, 11),)))
    unchanged = on_transfer(known_client, lead_created_by_this_call=True, transferred_to=9)
    assert (unchanged.changed, unchanged.responsible_id) == (False, 11)


# --- T12: simple mode --------------------------------------------------------------------------------

@pytest.mark.parametrize(("creation_mode", "pipeline"), [("contact", None), ("company", 4)])
def test_t12_simple_mode_creates_a_deal_with_a_contact_or_company(creation_mode: str,
                                                                  pipeline: int | None) -> None:
    plan = decide(call(mode="simple", deal_creation_mode=creation_mode, deal_pipeline_id=pipeline,
                       unknown_caller_action="offer_in_card"))
    assert plan.action == Action.CREATE_DEAL
    assert plan.create == ("deal", creation_mode)
    assert plan.pipeline_id == pipeline
    assert plan.responsible_id == QUEUE[0]
    assert "T12" in plan.rule_ids


# --- T13: conversion keeps the lead's activities and shares them -------------------------------------

def test_t13_conversion_keeps_activities_on_the_lead_and_adds_them_to_new_items() -> None:
    lead = ItemRef("lead", 5)
    new = [ItemRef("contact", 3), ItemRef("deal", 9)]
    bindings = bindings_after_conversion(lead, new, [101, 102, 101])
    assert set(bindings) == {Binding(a, ref) for a in (101, 102) for ref in (lead, *new)}
    assert len(bindings) == 6
    assert bindings_after_conversion(lead, new, []) == ()
    with pytest.raises(ValueError, match="only a lead"):
        bindings_after_conversion(ItemRef("contact", 3), new, [101])
    with pytest.raises(ValueError, match="not into lead"):
        bindings_after_conversion(lead, [ItemRef("lead", 6)], [101])


# --- M11: repeat sales and legacy lead mode (every channel) ------------------------------------------

@pytest.mark.parametrize("channel", list(Channel))
def test_m11_repeat_sales_creates_a_repeat_lead_even_when_creation_is_off(channel: Channel) -> None:
    items = (known("contact", 3, 11), known("lead", 2, 12, status="converted"))
    plan = decide(call(channel=channel, items=items, repeat_sales=True, create_items=False,
                       unknown_caller_action="offer_in_card", create_for="outgoing"))
    assert plan.action == Action.CREATE_LEAD
    assert plan.create == ("lead",)
    assert plan.attach_to == (ItemRef("contact", 3),)
    assert plan.responsible_id == 11
    assert plan.source_id == SOURCE_CALL
    assert plan.transfer_moves_responsible is False
    assert "M11" in plan.rule_ids


def test_m11_repeat_sales_reopens_a_party_whose_only_lead_is_closed() -> None:
    plan = decide(call(items=(known("lead", 2, 16, status="closed"),), repeat_sales=True))
    assert (plan.action, plan.create, plan.attach_to) == (Action.CREATE_LEAD, ("lead",), ())
    assert plan.responsible_id == 16
    unowned = decide(call(items=(known("lead", 2, None, status="closed"),), repeat_sales=True))
    assert unowned.responsible_id == QUEUE[0] and "T10" in unowned.rule_ids


def test_m11_repeat_sales_attaches_while_a_request_is_in_progress() -> None:
    items = (known("contact", 3, 11), known("lead", 4, 12))
    plan = decide(call(items=items, repeat_sales=True))
    assert plan.action == Action.ATTACH
    assert "M11" not in plan.rule_ids


def test_m11_repeat_sales_in_simple_mode_makes_a_repeat_deal() -> None:
    plan = decide(call(mode="simple", deal_pipeline_id=3, items=(known("company", 6, 14),), repeat_sales=True))
    assert (plan.action, plan.create, plan.pipeline_id) == (Action.CREATE_DEAL, ("deal",), 3)
    assert plan.attach_to == (ItemRef("company", 6),)


def test_m11_legacy_mode_attaches_to_the_active_deal() -> None:
    items = (known("contact", 3, 11), known("deal", 20, 12), known("deal", 21, 13),
             known("deal", 30, 15, status="closed"), known("lead", 2, 16, status="closed"))
    plan = decide(call(items=items, repeat_sales=False, legacy_lead_mode=True))
    assert plan.action == Action.ATTACH
    assert plan.attach_to == (ItemRef("deal", 21),)
    assert plan.responsible_id == 13
    assert plan.rule_ids == ("M11",)


def test_m11_legacy_mode_without_active_deal_attaches_to_the_closed_lead() -> None:
    items = (known("contact", 3, 11), known("lead", 2, 16, status="closed"), known("lead", 1, 17, status="closed"),
             known("deal", 30, 15, status="closed"))
    plan = decide(call(items=items, repeat_sales=False, legacy_lead_mode=True))
    assert plan.action == Action.ATTACH
    assert plan.attach_to == (ItemRef("lead", 2),)
    assert plan.responsible_id == 16
    assert plan.rule_ids == ("M11",)


def test_m11_both_modes_off_attach_to_the_client_per_t7() -> None:
    items = (known("contact", 3, 11), known("lead", 2, 16, status="closed"))
    plan = decide(call(items=items, repeat_sales=False, legacy_lead_mode=False))
    assert (plan.action, plan.attach_to, plan.rule_ids) == (Action.ATTACH, (ItemRef("contact", 3),), ("T7",))


# --- C1: explainable, storable ----------------------------------------------------------------------

def test_c1_explain_gives_one_line_per_rule_id() -> None:
    plan = decide(call())
    lines = explain(plan).splitlines()
    assert [line.split(":", 1)[0] for line in lines] == list(plan.rule_ids)
    assert "T4a: caller not in the CRM and the number creates leads automatically → new lead" in lines
    assert "employee 7" in explain(plan)


def test_c1_plan_round_trips_through_its_dict_form() -> None:
    plan = decide(call(items=(known("contact", 3, 11),), repeat_sales=True))
    assert LinkPlan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ValueError, match="rule_ids"):
        LinkPlan.from_dict({"interaction_key": "k", "action": "attach"})
    with pytest.raises(ValueError):
        LinkPlan.from_dict({"interaction_key": "k", "action": "explode", "rule_ids": ["T7"]})


def test_bad_settings_are_refused_with_a_message_naming_the_field() -> None:
    with pytest.raises(ValueError, match="create_for"):
        ChannelSettings(create_for="sometimes")
    with pytest.raises(ValueError, match="mode"):
        CrmModeSettings(mode="fancy")
    with pytest.raises(ValueError, match="ItemRef.type"):
        ItemRef("invoice", 1)


# --- M8 (mail, same engine): known client outside the mailbox's queue --------------------------------

def test_m8_mail_from_a_client_whose_manager_is_not_in_the_queue_makes_a_new_lead() -> None:
    client = (known("contact", 3, 11),)
    outside = decide(call(channel=Channel.EMAIL, items=client, route_known_to_responsible=True))
    assert (outside.action, outside.create, outside.responsible_id) == (Action.CREATE_LEAD, ("lead",), QUEUE[0])
    assert outside.rule_ids[0] == "M8"
    inside = decide(call(channel=Channel.EMAIL, items=client, route_known_to_responsible=True,
                         queue_member_ids=(8, 11)))
    assert (inside.action, inside.attach_to, inside.responsible_id) == (Action.ATTACH, (ItemRef("contact", 3),), 11)
    option_off = decide(call(channel=Channel.EMAIL, items=client, route_known_to_responsible=False))
    assert option_off.action == Action.ATTACH
    a_call = decide(call(channel=Channel.CALL, items=client, route_known_to_responsible=True))
    assert a_call.action == Action.ATTACH


@pytest.mark.parametrize("action", ["auto_lead", "offer_in_card"])
def test_r6_caller_without_a_usable_number_never_creates_a_lead(action: str) -> None:
    interaction = replace(call(unknown_caller_action=action), party_phone=None)
    plan = decide(interaction)
    assert (plan.action, plan.create, plan.record_activity) == (Action.RECORD_ONLY, (), False)
    assert plan.rule_ids == ("R6",)
    assert "never a new item" in plan.notes[0]


def test_r6_in_simple_mode_no_deal_either() -> None:
    plan = decide(replace(call(mode="simple"), party_phone=None))
    assert plan.action == Action.RECORD_ONLY and plan.rule_ids == ("R6",)
