"""The linking engine's mail rules (M1, M2, M3, M4, M11, M12): gates and inputs of the ONE engine."""

from __future__ import annotations

from typing import Any

from gateway.crm_bridge.linking import (
    Action,
    Channel,
    ChannelSettings,
    CrmModeSettings,
    Direction,
    Interaction,
    ItemRef,
    KnownItem,
    PartyKnowledge,
    decide,
    explain,
)

QUEUE = (7, 8)
CLIENT = (KnownItem(ItemRef("contact", 3), 11),)


def mail(
    *,
    items: tuple[KnownItem, ...] = (),
    is_employee: bool = False,
    is_exception: bool = False,
    manual_save: bool = False,
    thread: tuple[KnownItem, ...] = (),
    repeat_sales: bool = False,
    **settings: Any,
) -> Interaction:
    """An inbound email from anna@client.example on a mailbox with integration on and queue (7, 8)."""
    defaults: dict[str, Any] = {"source_id": 4, "queue_member_ids": QUEUE, "integration": True}
    return Interaction(
        key="email:<m1@client.example>",
        channel=Channel.EMAIL,
        direction=Direction.INBOUND,
        party_phone=None,
        party_email="anna@client.example",
        settings=ChannelSettings(**{**defaults, **settings}),
        crm=CrmModeSettings(repeat_sales=repeat_sales),
        knowledge=PartyKnowledge(items=items, is_employee=is_employee, is_exception=is_exception),
        manual_save=manual_save,
        thread_items=thread,
    )


def test_m1_integration_off_saves_nothing_automatically_not_even_a_known_clients_mail() -> None:
    assert decide(mail(integration=False)).action == Action.RECORD_ONLY
    known = decide(mail(integration=False, items=CLIENT))
    assert known.action == Action.RECORD_ONLY and known.rule_ids == ("M1",)
    assert known.attach_to == () and not known.record_activity


def test_m1_integration_off_m8_option_creates_no_lead() -> None:
    plan = decide(mail(integration=False, items=CLIENT, route_known_to_responsible=True))
    assert plan.action == Action.RECORD_ONLY and not plan.create


def test_m1_no_items_for_new_senders_keeps_new_mail_and_still_saves_known_clients() -> None:
    new = decide(mail(create_items=False))
    assert new.action == Action.RECORD_ONLY and new.rule_ids == ("M1",)
    known = decide(mail(create_items=False, items=CLIENT))
    assert known.action == Action.ATTACH and known.attach_to == (ItemRef("contact", 3),)


def test_m3_manual_save_binds_by_the_same_rules_as_an_automatic_save() -> None:
    new = decide(mail(integration=False, manual_save=True))
    assert new.action == Action.CREATE_LEAD and new.source_id == 4 and new.responsible_id == 7
    assert new.rule_ids[-1] == "M3"
    automatic = decide(mail())
    assert new.create == automatic.create and new.responsible_id == automatic.responsible_id
    known = decide(mail(integration=False, items=CLIENT, manual_save=True))
    assert known.action == Action.ATTACH and known.attach_to == (ItemRef("contact", 3),)
    assert known.responsible_id == 11
    assert decide(mail(create_items=False, manual_save=True)).action == Action.CREATE_LEAD


def test_m4_manual_save_of_an_employees_mail_is_refused_with_a_clear_error() -> None:
    automatic = decide(mail(is_employee=True))
    assert automatic.action == Action.NOTHING and automatic.rule_ids == ("M4",)
    refused = decide(mail(is_employee=True, integration=False, manual_save=True))
    assert refused.action == Action.REFUSED and "M4" in refused.rule_ids
    assert "error saving the email to the CRM" in explain(refused)


def test_t8_exception_list_mail_is_kept_in_the_mailbox_only_and_cannot_be_saved_by_hand() -> None:
    assert decide(mail(is_exception=True, items=CLIENT)).action == Action.RECORD_ONLY
    assert decide(mail(is_exception=True, manual_save=True)).action == Action.REFUSED


def test_m2_spam_folder_set_to_the_inbox_stops_automatic_saving() -> None:
    for inbox in ("INBOX", "inbox", " Inbox "):
        plan = decide(mail(spam_folder=inbox, items=CLIENT))
        assert plan.action == Action.RECORD_ONLY and plan.rule_ids == ("M2",)
    assert decide(mail(spam_folder="Spam")).action == Action.CREATE_LEAD
    assert decide(mail(spam_folder="INBOX", manual_save=True)).action == Action.CREATE_LEAD


def test_m11_repeat_lead_never_when_the_mailbox_integration_is_off() -> None:
    closed = (KnownItem(ItemRef("contact", 3), 11), KnownItem(ItemRef("lead", 2), 11, "closed"))
    assert decide(mail(items=closed, repeat_sales=True, create_items=False)).action == Action.CREATE_LEAD
    assert decide(mail(items=closed, repeat_sales=True, integration=False)).action == Action.RECORD_ONLY


def test_m12_a_reply_is_bound_to_the_items_of_the_mail_it_answers() -> None:
    thread = (KnownItem(ItemRef("deal", 9), 8),)
    plan = decide(mail(items=CLIENT, thread=thread, route_known_to_responsible=True))
    assert plan.action == Action.ATTACH and plan.attach_to == (ItemRef("deal", 9),)
    assert plan.responsible_id == 8 and plan.rule_ids[0] == "M12"
    # A new sender replying to a mail sent from a lead: bound to the lead, no second lead.
    assert decide(mail(thread=(KnownItem(ItemRef("lead", 5), 7),))).create == ()
