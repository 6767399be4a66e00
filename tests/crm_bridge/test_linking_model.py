"""The engine's vocabulary: validation, storage form, explanations, and the documented step order (C1)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given

from gateway.crm_bridge.linking import (
    STEPS,
    Action,
    Interaction,
    ItemRef,
    KnownItem,
    LinkPlan,
    decide,
    engine,
    explain,
    explain_lines,
    on_transfer,
)
from tests.crm_bridge.test_linking import call, known
from tests.crm_bridge.test_linking_properties import interactions

#: A SPEC rule id as explanations write them: T4a, M11, O5, C1 ...
RULE_ID = re.compile(r"\b[TMOC]\d+[ab]?\b")


def rules_named(lines: list[str]) -> set[str]:
    """Every SPEC rule id an explanation names, as a line's label or inside its text."""
    named: set[str] = set()
    for line in lines:
        label, _, text = line.partition(":")
        if label != "note":
            named.add(label)
        named.update(RULE_ID.findall(text))
    return named


def test_c1_steps_run_in_the_order_the_module_documents() -> None:
    names = [step.__name__ for step in STEPS]
    assert names == [
        "screen_employee", "screen_exception", "integration_gate", "reply_to_thread", "known_party", "creation_gate",
        "unusable_party",
    ]
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
        ({"queue_member_ids": ()}, "T10: responsible of the new item: nobody (no active queue member to "
                                   "assign) (first active queue member, or the employee who placed an "
                                   "outbound call)"),
        ({"source_id": None}, "T6: the number names no source: new items carry none"),
    ],
)
def test_c1_explain_says_why_in_words(interaction_kwargs: dict, expected: str) -> None:
    assert expected in explain(decide(call(**interaction_kwargs))).splitlines()


def test_t11_explain_mentions_the_armed_transfer_rule() -> None:
    lines = explain_lines(decide(call(change_responsible_on_transfer=True)))
    assert "T11: a manual transfer moves the new lead to the transferee" in lines


def test_t11_armed_transfer_rule_is_in_the_rule_ids_the_explanation_comes_from() -> None:
    for action in ("auto_lead", "offer_in_card"):
        plan = decide(call(change_responsible_on_transfer=True, unknown_caller_action=action))
        assert "T11" in plan.rule_ids and plan.transfer_moves_responsible
        assert rules_named(explain_lines(plan)) <= set(plan.rule_ids)
    unarmed = decide(call(change_responsible_on_transfer=False))
    assert "T11" not in unarmed.rule_ids and not unarmed.transfer_moves_responsible
    known_client = decide(call(change_responsible_on_transfer=True, items=(known("contact", 3, 11),)))
    assert "T11" not in known_client.rule_ids and not known_client.transfer_moves_responsible


def test_t11_a_decision_stored_before_the_fix_is_read_with_its_rule_id() -> None:
    stored = {"interaction_key": "call:old", "action": "create_lead", "create": ["lead"],
              "rule_ids": ["T3", "T5", "T4a", "T6", "T10"], "transfer_moves_responsible": True}
    plan = LinkPlan.from_dict(stored)
    assert plan.rule_ids == ("T3", "T5", "T4a", "T6", "T10", "T11")
    assert plan.transfer_moves_responsible
    assert plan.to_dict()["transfer_moves_responsible"] is True
    assert LinkPlan.from_dict(plan.to_dict()) == plan


@given(interactions)
def test_c1_every_rule_the_explanation_names_is_in_rule_ids(interaction: Interaction) -> None:
    plan = decide(interaction)
    lines = explain_lines(plan)
    assert [line.split(":", 1)[0] for line in lines if not line.startswith("note:")] == list(plan.rule_ids)
    assert rules_named(lines) <= set(plan.rule_ids)
    assert plan.transfer_moves_responsible == ("T11" in plan.rule_ids)


def test_t11_transfer_to_the_current_responsible_changes_nothing() -> None:
    plan = decide(call(change_responsible_on_transfer=True))
    verdict = on_transfer(plan, lead_created_by_this_call=True, transferred_to=plan.responsible_id or 0)
    assert verdict.changed is False and verdict.responsible_id == plan.responsible_id


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
