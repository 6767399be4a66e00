"""The engine's vocabulary: validation, storage form, explanations, and the documented step order (C1)."""

from __future__ import annotations

import pytest
from hypothesis import given

from gateway.crm_bridge.linking import (
    STEPS,
    Action,
    Direction,
    Interaction,
    ItemRef,
    KnownItem,
    LinkPlan,
    decide,
    engine,
    explain,
    explain_lines,
    on_transfer,
    ring_responsible,
)
from tests.crm_bridge.test_linking import call, known
from tests.crm_bridge.test_linking_properties import interactions


def test_c1_steps_run_in_the_order_the_module_documents() -> None:
    names = [step.__name__ for step in STEPS]
    assert names == ["screen_employee", "screen_exception", "known_party", "creation_gate"]
    doc = engine.__doc__ or ""
    positions = [doc.index(name) for name in [*names, "create_for_new"]]
    assert positions == sorted(positions)


@given(interactions)
def test_c1_every_rule_id_a_plan_carries_has_its_own_sentence(interaction: Interaction) -> None:
    plan = decide(interaction)
    for line in explain_lines(plan)[: len(plan.rule_ids)]:
        assert not line.endswith(": applied"), line


@pytest.mark.parametrize(
    ("interaction_kwargs", "expected"),
    [
        ({"is_employee": True}, "T9: party is one of our employees → the call is not recorded in the CRM"),
        ({"is_exception": True}, "T8: party on the CRM exception list → logged by the gateway only, "
                                 "nothing created, no activity"),
        ({"create_for": "outgoing"}, "T5: the number creates no items for calls in this direction → "
                                     "nothing created, no activity"),
        ({"items": (known("contact", 3, 11),)}, "T7: party already in the CRM → activity on contact 3, "
                                                "never a new lead; responsible employee 11"),
        ({"mode": "simple", "deal_pipeline_id": 4, "deal_creation_mode": "company"},
         "T12: simple mode, new request → deal in pipeline 4 with company"),
        ({"mode": "simple"}, "T12: simple mode, new request → deal in the default pipeline with contact"),
        ({"items": (known("deal", 20, 12),), "legacy_lead_mode": True},
         "M11: repeat sales off, legacy lead mode on → request attached to deal 20"),
        ({"queue_member_ids": ()}, "T10: responsible of the new item: nobody (no queue member to assign) "
                                   "(first queue member, or the employee who placed an outbound call)"),
        ({"source_id": None}, "T6: the number names no source: new items carry none"),
    ],
)
def test_c1_explain_says_why_in_words(interaction_kwargs: dict, expected: str) -> None:
    assert expected in explain(decide(call(**interaction_kwargs))).splitlines()


def test_t11_explain_mentions_the_armed_transfer_rule() -> None:
    lines = explain_lines(decide(call(change_responsible_on_transfer=True)))
    assert "T11: a manual transfer moves the new lead to the transferee" in lines


def test_t11_transfer_to_the_current_responsible_changes_nothing() -> None:
    plan = decide(call(change_responsible_on_transfer=True))
    verdict = on_transfer(plan, lead_created_by_this_call=True, transferred_to=plan.responsible_id or 0)
    assert verdict.changed is False and verdict.responsible_id == plan.responsible_id


def test_t7_rings_the_responsible_only_for_inbound_attached_calls() -> None:
    items = (known("contact", 3, 11),)
    outbound = call(items=items, route_known_to_responsible=True, direction=Direction.OUTBOUND)
    assert ring_responsible(outbound, decide(outbound)) is None
    new_caller = call(route_known_to_responsible=True)
    assert ring_responsible(new_caller, decide(new_caller)) is None
    no_owner = call(items=(known("contact", 3, None),), route_known_to_responsible=True)
    assert ring_responsible(no_owner, decide(no_owner)) is None


def test_plan_refuses_to_exist_without_rule_ids_or_with_unknown_item_types() -> None:
    with pytest.raises(ValueError, match="rule ids"):
        LinkPlan("call:x", Action.NOTHING)
    with pytest.raises(ValueError, match="LinkPlan.create"):
        LinkPlan("call:x", Action.CREATE_LEAD, create=("invoice",), rule_ids=("T4a",))


def test_item_refs_and_known_items_validate_their_fields() -> None:
    with pytest.raises(ValueError, match="int"):
        ItemRef("lead", True)  # a bool is an int to Python but never an item id
    with pytest.raises(ValueError, match="'type' and 'id'"):
        ItemRef.from_dict({"type": "lead"})
    with pytest.raises(ValueError, match="status"):
        KnownItem(ItemRef("lead", 1), None, "won")
    assert ItemRef.from_dict(ItemRef("deal", 9).to_dict()) == ItemRef("deal", 9)


def test_interaction_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        call().__class__(**{**call().__dict__, "key": ""})
