"""Deactivated employees are never made responsible (T10, T7, M8, M11): the engine's inactive input.

T10's "first member of the queue group" is the first ACTIVE member. The SPEC says nothing about a
client whose CRM responsible was deactivated; the engine then falls back to the number's queue group
rule (T10) and says so in the plan's rule ids and notes.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.crm_bridge.linking import Action, Channel, Direction, Interaction, ItemRef, decide, explain
from tests.crm_bridge.test_linking import QUEUE, call, known
from tests.crm_bridge.test_linking_properties import ids, interactions


def test_t10_the_first_active_queue_member_gets_the_new_lead() -> None:
    assert decide(call(inactive=frozenset({7}))).responsible_id == 8
    assert decide(call(inactive=frozenset({7, 8}))).responsible_id == 9
    assert decide(call(inactive=frozenset({8}))).responsible_id == 7
    plan = decide(call(inactive=frozenset({7})))
    assert "T10" in plan.rule_ids
    assert any("employee 7" in note and "inactive" in note for note in plan.notes)


def test_t10_a_queue_of_inactive_employees_assigns_nobody() -> None:
    plan = decide(call(inactive=frozenset(QUEUE)))
    assert plan.action == Action.CREATE_LEAD
    assert plan.responsible_id is None
    assert "T10: responsible of the new item: nobody" in explain(plan)


def test_t10_offer_in_card_and_simple_mode_skip_inactive_members_too() -> None:
    card = decide(call(unknown_caller_action="offer_in_card", inactive=frozenset({7})))
    assert (card.action, card.responsible_id) == (Action.OFFER_IN_CARD, 8)
    deal = decide(call(mode="simple", inactive=frozenset({7})))
    assert (deal.action, deal.responsible_id) == (Action.CREATE_DEAL, 8)


def test_t10_an_inactive_agent_does_not_get_the_outbound_lead() -> None:
    plan = decide(call(direction=Direction.OUTBOUND, agent_id=5, inactive=frozenset({5})))
    assert plan.responsible_id == QUEUE[0]
    active_agent = decide(call(direction=Direction.OUTBOUND, agent_id=5, inactive=frozenset({7})))
    assert active_agent.responsible_id == 5


def test_t7_known_client_of_an_inactive_employee_falls_back_to_the_queue_group() -> None:
    items = (known("contact", 3, 11), known("deal", 20, 12))
    plan = decide(call(items=items, inactive=frozenset({11})))
    assert plan.action == Action.ATTACH
    assert set(plan.attach_to) == {ItemRef("contact", 3), ItemRef("deal", 20)}
    assert plan.create == ()
    assert plan.responsible_id == QUEUE[0]
    assert plan.rule_ids == ("T7", "T10")
    assert any("employee 11" in note and "inactive" in note for note in plan.notes)
    unchanged = decide(call(items=items, inactive=frozenset({12})))
    assert (unchanged.responsible_id, unchanged.rule_ids) == (11, ("T7",))


def test_t7_fallback_skips_inactive_queue_members_as_well() -> None:
    plan = decide(call(items=(known("contact", 3, 11),), inactive=frozenset({11, 7})))
    assert plan.responsible_id == 8


def test_m11_repeat_lead_of_an_inactive_owner_goes_to_the_queue() -> None:
    plan = decide(call(items=(known("contact", 3, 11),), repeat_sales=True, inactive=frozenset({11})))
    assert (plan.action, plan.attach_to) == (Action.CREATE_LEAD, (ItemRef("contact", 3),))
    assert plan.responsible_id == QUEUE[0]
    assert plan.rule_ids[0] == "M11" and "T10" in plan.rule_ids


def test_m11_legacy_attachment_to_an_inactive_employees_deal_goes_to_the_queue() -> None:
    items = (known("contact", 3, 11), known("deal", 21, 13))
    plan = decide(call(items=items, legacy_lead_mode=True, inactive=frozenset({13})))
    assert (plan.action, plan.attach_to) == (Action.ATTACH, (ItemRef("deal", 21),))
    assert plan.responsible_id == QUEUE[0]
    assert plan.rule_ids == ("M11", "T10")


def test_m8_a_client_whose_manager_is_in_the_queue_but_inactive_gets_a_new_item_for_the_queue() -> None:
    client = (known("contact", 3, 11),)
    plan = decide(call(channel=Channel.EMAIL, items=client, route_known_to_responsible=True,
                       queue_member_ids=(11, 8), inactive=frozenset({11})))
    assert (plan.action, plan.create, plan.responsible_id) == (Action.CREATE_LEAD, ("lead",), 8)
    assert plan.rule_ids[0] == "M8"


def test_inactive_ids_must_be_employee_ids() -> None:
    interaction = call(inactive=frozenset({7}))
    assert isinstance(interaction.inactive_employee_ids, frozenset)
    try:
        call(inactive=frozenset({"7"}))  # type: ignore[arg-type]
    except ValueError as exc:
        assert "inactive_employee_ids" in str(exc)
    else:
        raise AssertionError("a non-integer employee id was accepted")


@given(interactions, st.frozensets(ids, max_size=6))
def test_t10_no_plan_ever_makes_an_inactive_employee_responsible(interaction: Interaction,
                                                                 inactive: frozenset[int]) -> None:
    plan = decide(Interaction(**{**interaction.__dict__, "inactive_employee_ids": inactive}))
    assert plan.responsible_id is None or plan.responsible_id not in inactive


@given(members=st.lists(st.integers(1, 12), unique=True, max_size=8), inactive=st.frozensets(st.integers(1, 12)))
def test_t10_the_active_queue_is_the_group_in_order_without_its_deactivated_members(
    members: list[int], inactive: frozenset[int]
) -> None:
    interaction = call(inactive=inactive)
    assert interaction.active_of(tuple(members)) == tuple(m for m in members if m not in inactive)
