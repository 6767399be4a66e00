"""Properties of `decide` over generated interactions (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.crm_bridge.linking import (
    Action,
    Channel,
    ChannelSettings,
    CrmModeSettings,
    Direction,
    Interaction,
    ItemRef,
    KnownItem,
    LinkPlan,
    PartyKnowledge,
    decide,
    explain,
    on_transfer,
)

ids = st.integers(min_value=1, max_value=50)
known_items = st.builds(
    KnownItem,
    ref=st.builds(ItemRef, type=st.sampled_from(["lead", "contact", "company", "deal"]), id=ids),
    responsible_id=st.none() | ids,
    status=st.sampled_from(["active", "converted", "closed"]),
).filter(lambda item: item.ref.type in ("lead", "deal") or item.status == "active")

interactions = st.builds(
    Interaction,
    key=st.text(min_size=1, max_size=20),
    channel=st.sampled_from(list(Channel)),
    direction=st.sampled_from(list(Direction)),
    party_phone=st.none() | st.just("+33142685300"),
    party_email=st.none() | st.just("anna@example.fr"),
    settings=st.builds(
        ChannelSettings,
        create_items=st.booleans(),
        unknown_caller_action=st.sampled_from(["auto_lead", "offer_in_card"]),
        create_for=st.sampled_from(["incoming", "outgoing", "all"]),
        source_id=st.none() | ids,
        queue_member_ids=st.lists(ids, max_size=4, unique=True).map(tuple),
        route_known_to_responsible=st.booleans(),
        change_responsible_on_transfer=st.booleans(),
    ),
    crm=st.builds(
        CrmModeSettings,
        mode=st.sampled_from(["classic", "simple"]),
        deal_pipeline_id=st.none() | ids,
        deal_creation_mode=st.sampled_from(["contact", "company"]),
        repeat_sales=st.booleans(),
        legacy_lead_mode=st.booleans(),
    ),
    knowledge=st.builds(
        PartyKnowledge,
        items=st.lists(known_items, max_size=6, unique_by=lambda item: item.ref).map(tuple),
        is_employee=st.booleans(),
        is_exception=st.booleans(),
    ),
    agent_id=st.none() | ids,
)


@given(interactions)
def test_t8_t9_employees_and_exceptions_never_create_or_record(interaction: Interaction) -> None:
    plan = decide(interaction)
    if interaction.knowledge.is_employee or interaction.knowledge.is_exception:
        assert plan.action in (Action.NOTHING, Action.RECORD_ONLY)
        assert plan.create == () and plan.attach_to == () and not plan.record_activity


@given(interactions)
def test_c1_every_plan_is_explained_and_round_trips(interaction: Interaction) -> None:
    plan = decide(interaction)
    assert plan.rule_ids
    assert plan.interaction_key == interaction.key
    assert len(explain(plan).splitlines()) >= len(plan.rule_ids)
    assert LinkPlan.from_dict(plan.to_dict()) == plan


@given(interactions)
def test_plans_are_consistent_with_their_action(interaction: Interaction) -> None:
    plan = decide(interaction)
    known_refs = {item.ref for item in interaction.knowledge.items}
    assert set(plan.attach_to) <= known_refs
    if plan.action in (Action.CREATE_LEAD, Action.CREATE_DEAL):
        assert plan.create and plan.record_activity
        assert plan.source_id == interaction.settings.source_id
    else:
        assert plan.create == ()
    if plan.action == Action.ATTACH:
        assert plan.attach_to and plan.record_activity
    if plan.action == Action.CREATE_DEAL:
        assert plan.pipeline_id == interaction.crm.deal_pipeline_id and "lead" not in plan.create
    if interaction.crm.mode == "simple":
        assert plan.action not in (Action.CREATE_LEAD, Action.OFFER_IN_CARD)


@given(interactions)
def test_m11_t7_known_party_never_gets_a_new_item_unless_repeat_sales_or_m8(interaction: Interaction) -> None:
    plan = decide(interaction)
    mail_m8 = interaction.channel == Channel.EMAIL and interaction.settings.route_known_to_responsible
    if interaction.knowledge.items and not interaction.crm.repeat_sales and not mail_m8:
        assert plan.create == ()
    if plan.creates_anything and interaction.knowledge.items:
        assert plan.rule_ids[0] in ("M8", "M11")


@given(interactions, ids)
def test_t11_transfer_never_moves_a_known_partys_items(interaction: Interaction, transferee: int) -> None:
    plan = decide(interaction)
    decision = on_transfer(plan, lead_created_by_this_call=True, transferred_to=transferee)
    if interaction.knowledge.items or not interaction.settings.change_responsible_on_transfer:
        assert decision.changed is False and decision.responsible_id == plan.responsible_id
