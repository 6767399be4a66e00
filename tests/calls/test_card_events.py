"""The call card's hub (SPEC R8): call events become per-employee card events, in order, replayable by
Last-Event-ID, in bounded memory, the CRM read only for a card somebody can see. The CRM read is a fake here (a future the test resolves); the real read
and the stream are proven end to end with SIPp in tests/integration/test_live_card.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gateway.b2bua.events import CallAnswered, CallEnded, CallFailed, CallStarted, CallTransferred, LegOffered
from gateway.calls.card_events import CardHub
from gateway.calls.card_feed import STREAM_QUEUE, CardEvent
from gateway.calls.journal import RoutedCall
from gateway.routing.decision import RouteDecision
from gateway.routing.request import RouteRequest
from gateway.routing.targets import Target

ALICE, BRUNO, CHLOE = 11, 12, 13


class Crm:
    """A CardReader whose answers the test releases, so it can make the read slow."""

    def __init__(self, *, slow: bool = False) -> None:
        self.slow = slow
        self.release = asyncio.Event()
        self.read_calls: list[str] = []

    async def __call__(self, routed: RoutedCall) -> dict[str, Any]:
        self.read_calls.append(routed.call_id)
        if self.slow:
            await self.release.wait()
        return {"available": True, "action": "offer_in_card", "items": [], "offer": {"create": ["lead", "contact"]}}


def routed(call_id: str) -> RoutedCall:
    return RoutedCall(call_id=call_id, direction="inbound", number_id=7, number="+33184880000",
                      party_raw="0655000101", party_e164="+33655000101", decision=RouteDecision((), None, ()))


def request(call_id: str) -> RouteRequest:
    return RouteRequest(call_id=call_id, request_user="0184880000", to_user="0184880000",
                        caller_uri="sip:0655000101@trunk.test", caller_user="0655000101", caller_display=None,
                        asserted=None, privacy=None, source=("udp", "127.0.0.1", 5090), trusted=True,
                        authenticated_user=None, at=0.0)


def hub(crm: Crm, **options: Any) -> CardHub:
    return CardHub(crm, routed_call=routed, **options)


def ring(card: CardHub, call_id: str, *employees: int) -> None:
    card.call_started(CallStarted(call_id, request(call_id), 0.0))
    for employee_id in employees:
        card.leg_offered(LegOffered(call_id, Target.employee(employee_id, str(1000 + employee_id)), 0.0))


def answer_and_end(card: CardHub, call_id: str, employee_id: int) -> None:
    card.call_answered(CallAnswered(call_id, 1.0, 1.0, Target.employee(employee_id, str(1000 + employee_id))))
    card.call_ended(CallEnded(call_id, 4.0, "caller", 5.0))


def kinds(events: list[CardEvent]) -> list[tuple[str, str]]:
    return [(event.kind, event.call_id) for event in events]


async def seen(card: CardHub, employee_id: int, after: int | None = None) -> list[CardEvent]:
    """What a stream opened now shows: its backlog, then what its subscribing made readable."""
    stream = card.subscribe(employee_id, after)
    await settle()
    live = []
    while not stream.queue.empty():
        item = stream.queue.get_nowait()
        assert item is not None
        live.append(item)
    card.unsubscribe(employee_id, stream)
    return [*stream.backlog, *live]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_r8_each_employee_offered_sees_ringing_answered_ended_in_order_with_the_card() -> None:
    card = hub(Crm())
    ring(card, "c1", ALICE, BRUNO)
    await settle()
    answer_and_end(card, "c1", BRUNO)
    for employee_id in (ALICE, BRUNO):
        events = await seen(card, employee_id, after=0)
        assert kinds(events) == [("ringing", "c1"), ("answered", "c1"), ("ended", "c1")]
        assert [e.id for e in events] == sorted(e.id for e in events) and len({e.id for e in events}) == 3
    [ringing, answered, ended] = await seen(card, ALICE, after=0)
    assert ringing.data["caller"] == {"as_dialled": "0655000101", "e164": "+33655000101"}
    assert ringing.data["number"]["e164"] == "+33184880000" and ringing.data["crm"]["offer"]
    assert answered.data["answered_by"]["employee_id"] == BRUNO
    assert (ended.data["outcome"], ended.data["duration_s"]) == ("answered", 4.0)
    assert await seen(card, CHLOE, after=0) == []  # never offered: nothing


async def test_r8_a_slow_crm_read_holds_the_calls_events_back_in_order() -> None:
    crm = Crm(slow=True)
    card = hub(crm)
    ring(card, "c1", ALICE)
    answer_and_end(card, "c1", ALICE)
    await settle()
    assert await seen(card, ALICE, after=0) == []  # nothing before the ringing it follows
    crm.release.set()
    await settle()
    assert kinds(await seen(card, ALICE, after=0)) == [("ringing", "c1"), ("answered", "c1"), ("ended", "c1")]
    assert crm.read_calls == ["c1"]  # one read per call, whoever else it rings


async def test_r8_a_crm_read_past_its_time_still_rings_the_card_without_crm_knowledge() -> None:
    card = hub(Crm(slow=True), read_timeout=0.01)
    stream = card.subscribe(ALICE, None)
    ring(card, "c1", ALICE)
    ringing = await asyncio.wait_for(stream.queue.get(), 1.0)
    assert ringing is not None and ringing.kind == "ringing"
    assert ringing.data["crm"]["available"] is False and "in time" in ringing.data["crm"]["reason"]
    assert ringing.data["caller"]["e164"] == "+33655000101"


async def test_r8_last_event_id_replays_only_what_the_client_missed() -> None:
    card = hub(Crm())
    ring(card, "c1", ALICE)
    await settle()
    [first] = await seen(card, ALICE, after=0)
    card.call_answered(CallAnswered("c1", 1.0, 1.0, Target.employee(ALICE, "1011")))
    assert kinds(await seen(card, ALICE, after=first.id)) == [("answered", "c1")]
    # A new stream (no Last-Event-ID) starts with the cards of the calls still on.
    assert kinds(await seen(card, ALICE)) == [("ringing", "c1"), ("answered", "c1")]


async def test_r8_a_live_stream_gets_new_events_after_its_backlog() -> None:
    card = hub(Crm())
    stream = card.subscribe(ALICE, None)
    ring(card, "c1", ALICE)
    await settle()
    event = await asyncio.wait_for(stream.queue.get(), 1.0)
    assert event is not None and event.kind == "ringing" and stream.backlog == []
    card.close()
    assert await asyncio.wait_for(stream.queue.get(), 1.0) is None  # the stream is told to end


async def test_r8_an_ended_calls_events_are_dropped_after_the_grace_period() -> None:
    card = hub(Crm(), grace=0.05)
    ring(card, "c1", ALICE)
    await settle()
    answer_and_end(card, "c1", ALICE)
    assert kinds(await seen(card, ALICE, after=0))[-1] == ("ended", "c1")  # a reconnect within the grace sees the end
    assert await seen(card, ALICE) == []  # a new stream: the call is no longer on
    await asyncio.sleep(0.1)
    assert await seen(card, ALICE, after=0) == [] and card.buffered() == 0 and card.offered_to("c1") == ()


async def test_r8_a_missed_call_ends_the_card_as_missed() -> None:
    card = hub(Crm(), grace=0.05)
    ring(card, "c1", ALICE)
    await settle()
    card.call_failed(CallFailed("c1", 487, 2.0))
    assert [(e.kind, e.data.get("outcome")) for e in await seen(card, ALICE, after=0)] == [
        ("ringing", None), ("ended", "missed")]


async def test_r8_memory_is_bounded_per_employee_and_in_calls_followed() -> None:
    card = hub(Crm(), feed_cap=5, max_calls=3)
    card.subscribe(ALICE, None)  # watched: every card is read, its events reach the feed
    for n in range(3):
        ring(card, f"c{n}", ALICE)
    ring(card, "c-over", ALICE)  # past max_calls: no card, nothing kept
    await settle()
    assert card.offered_to("c-over") == () and card.offered_to("c0") == (ALICE,)
    for n in range(3):
        answer_and_end(card, f"c{n}", ALICE)
    assert card.buffered() == 5  # 9 events, only the newest 5 kept
    assert kinds(await seen(card, ALICE, after=0))[-1] == ("ended", "c2")


async def test_r8_at_the_cap_a_new_call_takes_the_place_of_the_call_that_ended_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ended calls stay followed for the grace (a reconnect gets their `ended`); under load they must not
    keep the calls on now from their cards: the oldest ended call is forgotten early instead."""
    card = hub(Crm(), max_calls=2)  # the grace (60 s) outlasts the test
    ring(card, "c-old", ALICE)
    ring(card, "c-older-on", ALICE)
    await settle()
    answer_and_end(card, "c-old", ALICE)
    ring(card, "c-new", ALICE)  # at the cap: c-old ended, so it makes room
    await settle()
    assert card.offered_to("c-new") == (ALICE,) and card.offered_to("c-old") == ()
    assert card.offered_to("c-older-on") == (ALICE,)  # a call still on is never forgotten for another
    with caplog.at_level(logging.WARNING):
        for n in range(3):
            ring(card, f"c-none-{n}", ALICE)  # every followed call is on: no card
    assert card.offered_to("c-none-0") == ()
    assert len([r for r in caplog.records if "got no card" in r.message]) == 1  # not a line per call


async def test_r8_a_stream_that_falls_behind_is_ended_and_replays_on_reconnect() -> None:
    card = hub(Crm(), feed_cap=STREAM_QUEUE * 4)
    stream = card.subscribe(ALICE, None)
    for n in range(STREAM_QUEUE + 1):
        ring(card, f"c{n}", ALICE)
    await settle()
    assert stream.queue.get_nowait() is None  # dropped: the client reconnects with its last id
    assert len(await seen(card, ALICE, after=0)) == STREAM_QUEUE + 1


async def test_r8_an_employee_offered_twice_gets_one_ringing() -> None:
    card = hub(Crm())
    ring(card, "c1", ALICE, ALICE)
    await settle()
    assert kinds(await seen(card, ALICE, after=0)) == [("ringing", "c1")]


async def test_r8_r5_a_transfer_reaches_the_transferor_and_the_colleague() -> None:
    card = hub(Crm())
    ring(card, "c1", ALICE)
    await settle()
    card.call_transferred(CallTransferred("c1", ALICE, BRUNO, 3.0, "blind"))
    card.call_transferred(CallTransferred("unknown", ALICE, BRUNO, 3.0))  # a call the card does not follow
    [_, transferred] = await seen(card, ALICE, after=0)
    assert transferred.kind == "transferred"
    assert (transferred.data["to"], transferred.data["by"], transferred.data["kind"]) == (
        {"employee_id": BRUNO}, ALICE, "blind")
    assert [event.kind for event in await seen(card, BRUNO, after=0)] == ["transferred"]


def test_r8_an_event_is_one_sse_message() -> None:
    text = CardEvent(42, "ringing", "c1", {"note": "two\nlines"}).sse()
    assert text.startswith("id: 42\nevent: ringing\ndata: {") and text.endswith("}\n\n")
    assert text.count("\n") == 4  # the JSON's newline is escaped: one data line


@pytest.mark.parametrize("extension_only", [True, False])
async def test_r8_a_phone_target_names_its_employee_by_extension(extension_only: bool) -> None:
    card = CardHub(Crm(), routed_call=routed, employee_for_extension={"1011": ALICE}.get)
    card.call_started(CallStarted("c1", request("c1"), 0.0))
    target = Target.phone("sip:1011@10.0.0.1", extension="1011",
                          employee_id=None if extension_only else ALICE)
    card.leg_offered(LegOffered("c1", target, 0.0))
    await settle()
    assert kinds(await seen(card, ALICE, after=0)) == [("ringing", "c1")]


def answer(card: CardHub, call_id: str, employee_id: int) -> None:
    card.call_answered(CallAnswered(call_id, 1.0, 1.0, Target.employee(employee_id, str(1000 + employee_id))))


async def test_r8_no_crm_read_for_a_call_offered_to_employees_without_a_stream() -> None:
    crm = Crm()
    card = hub(crm, grace=0.05)
    watched_elsewhere = card.subscribe(CHLOE, None)  # a stream, but none of these calls rings Chloé
    for n in range(3):
        ring(card, f"c{n}", ALICE, BRUNO)
        answer_and_end(card, f"c{n}", BRUNO)
    card.call_started(CallStarted("c-missed", request("c-missed"), 0.0))
    card.leg_offered(LegOffered("c-missed", Target.employee(ALICE, "1011"), 0.0))
    card.call_failed(CallFailed("c-missed", 487, 2.0))
    await settle()
    assert crm.read_calls == [] and card.offered_to("c0") == (ALICE, BRUNO)
    assert await seen(card, ALICE) == []  # a new stream shows the calls still on: none, and reads nothing
    await asyncio.sleep(0.1)
    assert crm.read_calls == [] and card.buffered() == 0  # forgotten after the grace, never read
    assert watched_elsewhere.queue.empty()


async def test_r8_a_stream_reconnecting_mid_call_gets_the_ringing_with_the_crm_then_the_answer() -> None:
    crm = Crm(slow=True)
    card = hub(crm)
    stream = card.subscribe(ALICE, None)
    ring(card, "c0", ALICE)
    crm.release.set()
    last = await asyncio.wait_for(stream.queue.get(), 1.0)
    assert last is not None and last.kind == "ringing"
    card.unsubscribe(ALICE, stream)  # the page is closed: c1 rings and is answered while nobody watches
    crm.release.clear()
    ring(card, "c1", ALICE)
    answer(card, "c1", ALICE)
    await settle()
    assert crm.read_calls == ["c0"]
    again = card.subscribe(ALICE, last.id)
    await settle()
    assert crm.read_calls == ["c0", "c1"] and again.backlog == [] and again.queue.empty()  # held while read
    crm.release.set()
    ringing, answered = [await asyncio.wait_for(again.queue.get(), 1.0) for _ in range(2)]
    assert ringing is not None and answered is not None
    assert kinds([ringing, answered]) == [("ringing", "c1"), ("answered", "c1")]
    assert last.id < ringing.id < answered.id
    assert ringing.data["crm"]["offer"] == {"create": ["lead", "contact"]}
    assert ringing.data["caller"]["e164"] == "+33655000101" and ringing.data["number"]["id"] == 7
    card.call_ended(CallEnded("c1", 4.0, "caller", 5.0))
    ended = await asyncio.wait_for(again.queue.get(), 1.0)
    assert ended is not None and ended.kind == "ended" and crm.read_calls == ["c0", "c1"]


async def test_r8_a_new_stream_mid_call_reads_the_card_of_the_call_still_on_only() -> None:
    crm = Crm()
    card = hub(crm)
    ring(card, "gone", ALICE)
    answer_and_end(card, "gone", ALICE)
    ring(card, "on", ALICE)
    answer(card, "on", ALICE)
    events = await seen(card, ALICE)
    assert kinds(events) == [("ringing", "on"), ("answered", "on")] and crm.read_calls == ["on"]
    assert events[0].data["crm"]["available"] is True


async def test_r8_a_subscriber_present_at_the_ringing_gets_the_crm_facts_read_once_for_all() -> None:
    crm = Crm()
    card = hub(crm)
    alices = card.subscribe(ALICE, None)
    ring(card, "c1", ALICE, BRUNO)  # Bruno has no stream: Alice's makes the read
    answer(card, "c1", ALICE)
    ringing, answered = [await asyncio.wait_for(alices.queue.get(), 1.0) for _ in range(2)]
    assert ringing is not None and answered is not None
    assert kinds([ringing, answered]) == [("ringing", "c1"), ("answered", "c1")]
    assert ringing.data["crm"]["available"] is True and ringing.data["crm"]["offer"]
    assert crm.read_calls == ["c1"]
    brunos = await seen(card, BRUNO)
    assert kinds(brunos) == [("ringing", "c1"), ("answered", "c1")] and brunos[0].data["crm"]["offer"]
    assert crm.read_calls == ["c1"]  # Bruno's card came with Alice's read


async def test_r8_r5_a_transfer_to_a_watching_colleague_reads_the_unread_card() -> None:
    crm = Crm()
    card = hub(crm)
    brunos = card.subscribe(BRUNO, None)
    ring(card, "c1", ALICE)
    await settle()
    assert crm.read_calls == []
    card.call_transferred(CallTransferred("c1", ALICE, BRUNO, 3.0, "blind"))
    transferred = await asyncio.wait_for(brunos.queue.get(), 1.0)
    assert transferred is not None and transferred.kind == "transferred" and crm.read_calls == ["c1"]
    assert kinds(await seen(card, ALICE, after=0)) == [("ringing", "c1"), ("transferred", "c1")]
