"""Which items a known party's activity attaches to, and whose client it is (SPEC T7, `linking.party`)."""

from __future__ import annotations

from gateway.crm_bridge.linking import Action, ItemRef, PartyKnowledge, decide, party
from tests.crm_bridge.test_linking import call, known


def test_t7_attaches_to_every_open_item_request_first_then_client() -> None:
    items = (known("company", 6, 14), known("contact", 3, 11), known("contact", 4, 12),
             known("lead", 8, 15), known("deal", 20, 16), known("lead", 2, 17, status="converted"))
    plan = decide(call(items=items))
    assert plan.attach_to == (ItemRef("deal", 20), ItemRef("lead", 8), ItemRef("contact", 4),
                              ItemRef("contact", 3), ItemRef("company", 6))


def test_t7_owner_is_the_most_recent_contact_then_company_then_lead() -> None:
    assert decide(call(items=(known("company", 6, 14), known("contact", 3, 11), known("contact", 4, 12)))
                  ).responsible_id == 12
    assert decide(call(items=(known("company", 6, 14), known("lead", 8, 15)))).responsible_id == 14
    assert decide(call(items=(known("lead", 8, 15), known("deal", 20, 16)))).responsible_id == 15


def test_t7_owner_skips_items_without_a_responsible() -> None:
    plan = decide(call(items=(known("contact", 4, None), known("contact", 3, 11))))
    assert plan.responsible_id == 11
    assert decide(call(items=(known("contact", 4, None),))).responsible_id is None


def test_t7_party_with_only_finished_requests_goes_to_its_latest_closed_lead() -> None:
    items = (known("lead", 2, 16, status="closed"), known("lead", 5, 17, status="converted"),
             known("deal", 30, 15, status="closed"))
    plan = decide(call(items=items))
    assert (plan.action, plan.attach_to, plan.responsible_id) == (Action.ATTACH, (ItemRef("lead", 5),), 17)
    only_deal = decide(call(items=(known("deal", 30, 15, status="closed"),)))
    assert only_deal.attach_to == (ItemRef("deal", 30),)


def test_t7_a_known_party_is_never_given_a_new_lead_without_repeat_sales() -> None:
    plan = decide(call(items=(known("lead", 2, 16, status="closed"),), unknown_caller_action="auto_lead"))
    assert plan.action == Action.ATTACH and plan.create == ()


def test_party_views_on_an_unknown_party_are_empty() -> None:
    nobody = PartyKnowledge()
    assert not party.is_known(nobody)
    assert party.attachment(nobody) == [] and party.owner([]) is None
