"""Issue 10 / SPEC C4 with real processes: PostgreSQL stops in the middle, calls still ring the queue,
and once it is back each call's call-log row and CRM outcome are written exactly once.

A real `gateway run` over a PostgreSQL cluster of this module's own (halting it must not touch the
session's cluster), seeded with the demo (number +33 1 84 88 00 00, queue Sales: Alice 1001 then
Bruno 1002). Bruno's SIPp phone registers with the digest secret stored in the database (Alice has
no phone, so the queue skips her) and answers; SIPp plays the trunk with new callers: one before the
halt, one up across the halt, five during the outage (the first of them calls twice), one up across the
restart. Each call must be answered, then have one call-log row, one decision and one call activity,
and each caller one lead, created by their first call.

Issue 14 part 6: the outage lasts 30 s under load (thirty new callers one after another while it is
down), and the journal may hold only 3 calls' writes in memory: the rest wait in its spool on disk
(gateway_call_spool_spilled) and are all written, once, in the order they came, when it is back.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.demo import DEMO_SIP_SECRETS
from tests.helpers.realservers import Postgres, halt_postgres, restart_postgres, start_postgres, stop_postgres
from tests.integration.conftest import HOST, USER_1001_PASSWORD, GatewayProcess, start_gateway, stop_gateway
from tests.integration.phones import Phones
from tests.integration.trunk import Trunk, TrunkCall

DIALLED = "0184880000"  # the demo number in its national form
BRUNO_SECRET = DEMO_SIP_SECRETS["1002"]  # stored in the database as digest HA1s only
BEFORE, ACROSS_HALT, ACROSS_RESTART = "0611000000", "0611000010", "0611000020"
DURING = [f"06110100{n:02d}" for n in range(1, 31)]  # thirty new callers while PostgreSQL is down
OUTAGE_S = 30.0
MEMORY_CALLS = 3  # [journal] memory_calls: the calls beyond wait in the spool only
DRAIN_WITHIN_S = 45.0


def e164(national: str) -> str:
    return "+33" + national[1:]


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[Postgres]:
    """A cluster for this module only: the test halts and restarts it."""
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)


@pytest.fixture(scope="module")
def outage_db(own_postgres: Postgres) -> str:
    """The name of the gateway's database (empty: the gateway migrates and seeds it)."""
    return own_postgres.create_database("outage")


@pytest.fixture(scope="module")
def gateway(own_postgres: Postgres, outage_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    url = own_postgres.url(outage_db)
    running = start_gateway(tmp_path_factory.mktemp("pg-outage"), database_url=url,
                            extra=f"[journal]\nmemory_calls = {MEMORY_CALLS}\n")
    try:
        yield running
    finally:
        stop_gateway(running)


class Admin:
    """The gateway's admin API and /metrics over real HTTP."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.base = f"http://{HOST}:{gateway.admin_port}"
        found = re.search(r"admin API token \(shown once, store it now\): (\S+)", gateway.log())
        assert found, gateway.log()
        self.token = found.group(1)

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, headers={"authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                body = answer.read()
                return answer.status, json.loads(body) if body and path != "/metrics" else body
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def metric(self, name: str) -> float:
        status, body = self.get("/metrics")
        assert status == 200, body
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        raise AssertionError(f"{name} not in /metrics")


class Database:
    """SQL straight to the gateway's PostgreSQL database (what the admin API does not show: counts)."""

    def __init__(self, server: Postgres, name: str) -> None:
        self.server = server
        self.name = name

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(host=HOST, port=self.server.port, user="postgres", dbname=self.name) as connection:
            return list(connection.execute(query, params).fetchall())

    def count(self, query: str, *params: Any) -> int:
        [(found,)] = self.rows(query, *params)
        return int(found)


def wait_for(condition: Callable[[], bool], within: float, what: str, explain: Callable[[], str]) -> float:
    """Seconds until `condition()` held; AssertionError with `explain()` past `within`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within:.0f} s: {what}\n{explain()}")
        time.sleep(0.2)
    return time.monotonic() - started


def journal_settled(admin: Admin, db: Database, call_ids: list[str]) -> Callable[[], bool]:
    """No journal write waiting, every call ended and decided in the log, no CRM write pending."""

    def settled() -> bool:
        if admin.metric("gateway_call_journal_pending") != 0:
            return False
        logged = db.count("SELECT count(*) FROM calls WHERE call_id = ANY(%s) AND ended_at IS NOT NULL "
                          "AND crm IS NOT NULL", call_ids)
        return logged == len(call_ids) and db.count(
            "SELECT count(*) FROM outbox_entries WHERE status = 'pending'") == 0

    return settled


def assert_written_once(admin: Admin, db: Database, call_id: str, caller: str, answered_by: int,
                        lead_from: str | None = None) -> None:
    """One call-log row, one decision, one call activity, and one lead for its caller: created by this
    call, or by `lead_from` (the Call-ID of the caller's earlier call), this one being attached to it."""
    key = f"call:{call_id}"
    [call] = db.rows("SELECT id, outcome, status, answered_by_id, party_e164 FROM calls WHERE call_id = %s", call_id)
    assert call[1:] == ("answered", 200, answered_by, e164(caller)), call
    assert db.count("SELECT count(*) FROM decisions WHERE interaction_key = %s", key) == 1
    leads = db.rows("SELECT l.interaction_key FROM leads l JOIN item_phones p ON p.item_type = 'lead' "
                    "AND p.item_id = l.id WHERE p.normalized = %s", e164(caller))
    assert leads == [(f"call:{lead_from or call_id}",)], (caller, leads)
    activities = db.rows("SELECT completed_at FROM activities WHERE interaction_key = %s AND kind = 'call'", key)
    assert len(activities) == 1 and activities[0][0] is not None, (call_id, activities)
    status, detail = admin.get(f"/calls/{call[0]}")
    assert status == 200, detail
    how = "created" if lead_from is None else "attached"
    assert [(item["type"], item["how"]) for item in detail["items"]].count(("lead", how)) == 1, detail


def test_c4_postgres_stopped_mid_test_calls_still_ring_the_queue_and_each_outcome_is_written_once(
    own_postgres: Postgres, outage_db: str, gateway: GatewayProcess, phones: Phones, trunk: Trunk,
) -> None:
    admin, db = Admin(gateway), Database(own_postgres, outage_db)
    status, employees = admin.get("/employees")
    assert status == 200, employees
    bruno = next(e["id"] for e in employees["items"] if e["extension"] == "1002")
    phone = phones.start(gateway, "1002", BRUNO_SECRET)

    # PostgreSQL up: a call is journaled with its lead and activity.
    before = trunk.call(gateway, TrunkCall(dialled=DIALLED, caller=BEFORE), talk_ms=300)
    assert before.statuses == [200] and before.successes == 1, before.explain()
    wait_for(journal_settled(admin, db, before.call_ids), 15, "the first call journaled", gateway.log)
    retries_before = admin.metric("gateway_call_journal_retries_total")

    # A call still up when PostgreSQL stops: started with the database, ends without it.
    across_halt = trunk.start(gateway, TrunkCall(dialled=DIALLED, caller=ACROSS_HALT), talk_ms=1500)
    phone.wait_calls(answered=2)
    halt_postgres(own_postgres)
    halted_at = time.monotonic()
    spanning = across_halt.wait()
    assert spanning.statuses == [200] and spanning.successes == 1, spanning.explain()

    # PostgreSQL down: the queue group rings from the in-memory snapshot; Bruno answers every call.
    during = trunk.call(gateway, *(TrunkCall(dialled=DIALLED, caller=caller) for caller in DURING), talk_ms=200,
                        time_limit_s=40)
    assert during.statuses == [200] * len(DURING) and during.successes == len(DURING), during.explain()
    assert len(set(during.call_ids)) == len(DURING)
    # The first of them calls again: after the outage, their first call must still be the one deciding
    # (a lead), the second attaching to it (C4: written later, once, in order).
    again = trunk.call(gateway, TrunkCall(dialled=DIALLED, caller=DURING[0]), talk_ms=300)
    assert again.statuses == [200] and again.successes == 1, again.explain()
    phone.wait_calls(answered=3 + len(DURING), ended=3 + len(DURING))
    assert admin.metric("gateway_call_journal_pending") > 0  # their writes wait, none dropped
    # Beyond the memory cap they wait on disk only: the calls of the outage less the few held in memory.
    spilled = admin.metric("gateway_call_spool_spilled")
    assert spilled >= len(DURING) - MEMORY_CALLS, spilled
    assert admin.metric("gateway_call_spool_calls") >= len(DURING) + 2
    assert admin.metric("gateway_call_journal_retries_total") > retries_before
    outage_status, outage_body = admin.get("/calls")
    assert outage_status == 503 and b"database is unavailable" in outage_body, (outage_status, outage_body)
    with urllib.request.urlopen(f"{admin.base}/healthz", timeout=5) as health:
        assert health.status == 200

    # A call still up when PostgreSQL comes back: started without the database, ends with it.
    across_restart = trunk.start(gateway, TrunkCall(dialled=DIALLED, caller=ACROSS_RESTART), talk_ms=2500)
    phone.wait_calls(answered=4 + len(DURING))
    # A phone registering now is served from memory; its binding is saved once the database is back.
    # (Alice is first in the queue: she registers only once every call of this test has been answered.)
    phones.start(gateway, "1001", USER_1001_PASSWORD)
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - halted_at)))
    outage_s = time.monotonic() - halted_at
    restart_postgres(own_postgres)
    restarted_at = time.monotonic()
    recovered_s = wait_for(lambda: admin.get("/calls")[0] == 200, 10, "the admin API answering again", gateway.log)
    resumed = across_restart.wait()
    assert resumed.statuses == [200] and resumed.successes == 1, resumed.explain()

    # Every postponed write made, each exactly once.
    runs = [(before, [BEFORE]), (spanning, [ACROSS_HALT]), (during, DURING), (resumed, [ACROSS_RESTART])]
    calls = [pair for run, callers in runs for pair in zip(run.call_ids, callers, strict=True)]
    call_ids = [call_id for call_id, _ in calls] + again.call_ids
    wait_for(journal_settled(admin, db, call_ids), DRAIN_WITHIN_S, "the postponed writes made", gateway.log)
    drained_s = time.monotonic() - restarted_at
    retries = admin.metric("gateway_call_journal_retries_total")
    assert admin.metric("gateway_call_spool_spilled") == 0 and admin.metric("gateway_call_spool_calls") == 0
    print(f"\n{len(call_ids)} calls, {len(DURING) + 1} of them during the outage ({spilled:.0f} spilled to disk); "
          f"outage {outage_s:.1f} s; admin API answering {recovered_s:.1f} s and journal + outbox drained "
          f"{drained_s:.1f} s after PostgreSQL came back; {retries - retries_before:.0f} journal retries")
    assert admin.metric("gateway_call_journal_failures_total") == 0
    for call_id, caller in calls:
        assert_written_once(admin, db, call_id, caller, bruno)
    assert_written_once(admin, db, again.call_ids[0], DURING[0], bruno, lead_from=during.call_ids[0])
    assert db.count("SELECT count(*) FROM calls") == len(call_ids)
    assert db.count("SELECT count(*) FROM leads") == len(calls)  # one per caller
    assert db.count("SELECT count(*) FROM activities WHERE kind = 'call'") == len(call_ids)
    assert db.count("SELECT count(*) FROM outbox_entries WHERE status <> 'done'") == 0
    status, listed = admin.get("/calls")
    assert status == 200 and listed["total"] == len(call_ids), listed
    assert phone.calls_answered() == len(call_ids), phone.explain()
    # The registration made during the outage reached the database too.
    wait_for(lambda: db.count("SELECT count(*) FROM registrar_bindings WHERE aor = %s", "1001") == 1, 10,
             "1001's binding saved", gateway.log)
