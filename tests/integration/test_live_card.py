"""The call card end to end (SPEC R8, T4b; issue 12 part 3): a real `gateway run`, SIPp as the trunk and
as the employees' phones, and each employee's `GET /card/stream` read with a real HTTP client (httpx)
while the calls ring, are answered and end. The card's endpoints are called with the employees' own
tokens, and what they queued is read back from the CRM once applied."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.conftest import GatewayProcess
from tests.integration.live_kit import Admin, LiveWorld, Staff, module_gateway, wait_for
from tests.integration.phones import Phones
from tests.integration.sse import SseReader
from tests.integration.trunk import Trunk


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    yield from module_gateway(tmp_path_factory, "live-card")


@pytest.fixture(scope="module")
def admin(gateway: GatewayProcess) -> Admin:
    return Admin(gateway)


@pytest.fixture
def world(gateway: GatewayProcess, admin: Admin, phones: Phones, trunk: Trunk) -> LiveWorld:
    return LiveWorld(gateway, admin, phones, trunk)


def token_of(world: LiveWorld, staff: Staff) -> str:
    return str(world.admin.post("/tokens", {"employee_id": staff.id, "name": "card"})["token"])


def stream(world: LiveWorld, token: str, query: str = "", **options: int) -> SseReader:
    return SseReader(f"{world.admin.base}/card/stream{query}", token, **options)


def as_employee(world: LiveWorld, token: str) -> Admin:
    """The admin API as an ordinary employee (their own token)."""
    api = Admin.__new__(Admin)
    api.base, api.token = world.admin.base, token
    return api


def test_r8_the_callee_sees_ringing_answered_ended_in_order_on_their_own_stream(world: LiveWorld) -> None:
    alice = world.staff("Alice")
    number = world.number(world.queue([alice]), unknown_caller_action="offer_in_card")
    with stream(world, token_of(world, alice)) as cards:
        run = world.start_call(number, "0655000901", talk_ms=1500).wait()
        assert run.successes == 1, run.explain()
        call_id = run.call_ids[0]
        events = cards.wait_for("ringing, answered, ended", lambda: len(cards.of_call(call_id)) >= 3 and
                                cards.of_call(call_id))
    assert [e.kind for e in events] == ["ringing", "answered", "ended"]
    assert [e.id for e in events] == sorted({e.id for e in events if e.id is not None})
    ringing, answered, ended = (e.data for e in events)
    assert ringing["caller"] == {"as_dialled": "0655000901", "e164": "+33655000901"}
    assert ringing["number"]["e164"] == number.e164 and ringing["number"]["id"] == number.id
    crm = ringing["crm"]
    assert crm["available"] and crm["action"] == "offer_in_card" and "T4b" in crm["rule_ids"]
    assert crm["known"] is False and crm["offer"] == {"create": ["lead", "contact"]}
    assert answered["answered_by"]["employee_id"] == alice.id
    assert ended["outcome"] == "answered" and ended["duration_s"] > 1


def test_r8_a_known_callers_card_shows_their_items_responsible_and_last_activities(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice"), world.employee("Bruno")
    caller = "0655000911"
    lead = world.admin.post("/items/lead", {"title": "Known client", "phones": [caller], "default_region": "FR",
                                            "responsible_id": bruno.id})
    number = world.number(world.queue([alice]))
    first = world.call(number, caller)
    world.logged(first.call_ids[0])  # the first call's activity is on the lead now
    with stream(world, token_of(world, alice)) as cards:
        second = world.start_call(number, caller, talk_ms=500).wait()
        call_id = second.call_ids[0]
        [ringing, *_] = cards.wait_for("the card", lambda: cards.of_call(call_id))
    crm = ringing.data["crm"]
    assert crm["known"] is True and crm["offer"] is None and "T7" in crm["rule_ids"]
    [item] = crm["items"]
    assert (item["type"], item["id"], item["title"]) == ("lead", lead["id"], "Known client")
    assert item["responsible"] == {"id": bruno.id, "name": bruno.name}
    [activity] = crm["last_activities"]  # the first call; never this call's own
    assert activity["kind"] == "call" and activity["direction"] == "inbound"


def test_t4b_the_callee_creates_a_lead_from_the_card_once_and_notes_on_its_activity(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice"), world.staff("Bruno", phone=None)
    alice_api, bruno_api = as_employee(world, token_of(world, alice)), as_employee(world, token_of(world, bruno))
    number = world.number(world.queue([alice]), unknown_caller_action="offer_in_card")
    caller = "0655000921"
    with stream(world, alice_api.token) as cards:
        ringing_call = world.start_call(number, caller, talk_ms=4000)
        [ringing] = cards.wait_for("the ringing card", lambda: cards.of_kind("ringing"))
        call_id = ringing.data["call_id"]
        assert ringing.data["crm"]["offer"] == {"create": ["lead", "contact"]}
        cards.wait_for("answered", lambda: [e for e in cards.of_call(call_id) if e.kind == "answered"])
        # Bruno's card did not ring: he may not act on it.
        refused = bruno_api.expect(403, "POST", "/card/create", {"call_id": call_id, "type": "lead"})
        assert "not offered to you" in refused["detail"]
        # The acting employee's own rights decide: without the edit right on leads, Alice may not.
        denied = alice_api.expect(403, "POST", "/card/create", {"call_id": call_id, "type": "lead"})
        assert "edit right on leads" in denied["detail"]
        world.admin.patch(f"/employees/{alice.id}", {"rights": [{"item_type": "lead", "view": "own", "edit": "own"}]})
        created = alice_api.expect(202, "POST", "/card/create", {"call_id": call_id, "type": "lead"})
        assert created["type"] == "lead" and created["responsible_id"] == alice.id and "T4b" in created["rule_ids"]
        again = alice_api.expect(409, "POST", "/card/create", {"call_id": call_id, "type": "contact"})
        assert "already created" in again["detail"]
        alice_api.expect(202, "POST", "/card/note", {"call_id": call_id, "text": "wants a quote\nfor 3 seats"})
        assert ringing_call.wait().successes == 1
    entry = world.logged(call_id)
    [(kind, lead_id)] = world.items(entry, "created")
    assert kind == "lead" and world.item("lead", lead_id)["responsible_id"] == alice.id
    assert [lead["id"] for lead in world.items_with_phone("lead", "+33655000921")] == [lead_id]
    [activity] = world.activities(entry["interaction_key"])
    details = json.loads(activity["details"])
    assert [n["text"] for n in details["notes"]] == ["wants a quote\nfor 3 seats"]
    assert details["notes"][0]["employee_id"] == alice.id and activity["completed_at"]
    assert world.items_with_phone("contact", "+33655000921") == []


def test_r8_another_employees_token_never_reads_someone_elses_card(world: LiveWorld) -> None:
    alice, bruno = world.staff("Alice"), world.staff("Bruno")
    number = world.number(world.queue([alice]), unknown_caller_action="offer_in_card")
    with (stream(world, token_of(world, alice)) as alices,
          stream(world, token_of(world, bruno), f"?employee_id={alice.id}") as bruno_asking_for_alices,
          stream(world, world.admin.token) as admins):
        run = world.start_call(number, "0655000931", talk_ms=500).wait()
        call_id = run.call_ids[0]
        alices.wait_for("Alice's card ended", lambda: [e for e in alices.of_call(call_id) if e.kind == "ended"])
        # Alice's three events were published; the others' streams, open all along, got none of them.
        assert bruno_asking_for_alices.status == 200 and bruno_asking_for_alices.of_call(call_id) == []
        assert admins.of_call(call_id) == []
    with stream(world, "gwt_not-a-token") as stranger:
        pass
    assert stranger.status == 401 and stranger.events == []
    # Replaying by Last-Event-ID reads one's own buffer only: from 0, Bruno still has nothing of the call.
    with stream(world, token_of(world, bruno), last_event_id=0) as replay:
        wait_for("the replay's first line", lambda: replay.comments)
        assert replay.of_call(call_id) == []


def test_r8_a_client_reconnecting_with_last_event_id_misses_nothing_of_a_call_still_on(world: LiveWorld) -> None:
    alice = world.staff("Alice")
    token = token_of(world, alice)
    number = world.number(world.queue([alice]), unknown_caller_action="offer_in_card")
    with stream(world, token) as first:
        running = world.start_call(number, "0655000941", talk_ms=3000)
        [ringing] = first.wait_for("ringing", lambda: first.of_kind("ringing"))
    call_id = ringing.data["call_id"]
    # Disconnected after the ringing: the answer (and the end) happen while no stream is open.
    wait_for("the call answered", lambda: (world.log_entry(call_id) or {}).get("answered_at"))
    with stream(world, token, last_event_id=ringing.id) as again:
        missed = again.wait_for("the answer replayed", lambda: again.of_call(call_id))
        assert missed[0].kind == "answered" and all(e.id is not None and e.id > (ringing.id or 0) for e in missed)
        assert running.wait().successes == 1
        again.wait_for("the end, live", lambda: [e for e in again.of_call(call_id) if e.kind == "ended"])
    assert [e.kind for e in again.of_call(call_id)] == ["answered", "ended"]
