"""Issue 14 part 5 / SPEC C2, C4 with real processes: `kill -9` of the gateway in the middle of a SIPp run.

A real `gateway run` with the demo seed (number +33 1 84 88 00 00 creates a lead for every new caller,
queue Sales: Alice 1001, Bruno 1002, both with SIPp phones that answer). SIPp plays the trunk: many
new callers, several calls up at once. Once some calls are over and others up, the gateway is killed
(SIGKILL: no clean stop, nothing flushed) and started again on the same ports; SIPp keeps calling (its
retransmitted INVITEs reach the new process). After the restart, every call SIPp sent an INVITE for has
exactly one call-log entry, one decision, one call activity, and its caller exactly one lead — none lost,
none doubled —, the phones' registrations are back without their re-registering, and the outbox drains.
Once on SQLite, once on PostgreSQL.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.demo import DEMO_SIP_SECRETS
from tests.helpers.realservers import Postgres
from tests.integration.conftest import (
    HOST,
    USER_1001_PASSWORD,
    GatewayProcess,
    restart_gateway,
    start_gateway,
    stop_gateway,
)
from tests.integration.live_kit import Admin, LiveWorld
from tests.integration.phones import Phones
from tests.integration.trunk import Trunk, TrunkCall, TrunkCalls

DIALLED = "0184880000"  # the demo number, national form
CALLS, CONCURRENT, TALK_MS = 24, 4, 1500
KILL_AFTER_ANSWERED = 6
SETTLE_WITHIN_S = 45.0


def e164(national: str) -> str:
    return "+33" + national[1:]


class Rows:
    """Read-only SQL on the gateway's database (SQLite file or PostgreSQL), no parameters."""

    def __init__(self, sqlite_file: Path | None = None, postgres: Postgres | None = None, name: str = "") -> None:
        self.sqlite_file, self.postgres, self.name = sqlite_file, postgres, name

    def __call__(self, query: str) -> list[tuple[Any, ...]]:
        if self.sqlite_file is not None:
            with sqlite3.connect(f"file:{self.sqlite_file}?mode=ro", uri=True, timeout=5) as connection:
                return list(connection.execute(query).fetchall())
        assert self.postgres is not None
        with psycopg.connect(host=HOST, port=self.postgres.port, user="postgres", dbname=self.name) as connection:
            return list(connection.execute(query).fetchall())


def metric(admin: Admin, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"{admin.base}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")


def wait_for(condition: Callable[[], bool], within: float, what: str, explain: Callable[[], str]) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within:.0f} s: {what}\n{explain()}")
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[GatewayProcess, Rows]]:
    directory = tmp_path_factory.mktemp(f"crash-{request.param}")
    if request.param == "sqlite":
        rows, url = Rows(sqlite_file=directory / "gateway.db"), None
    else:
        postgres: Postgres = request.getfixturevalue("postgres")
        name = postgres.create_database("crash")
        rows, url = Rows(postgres=postgres, name=name), postgres.url(name)
    gateway = start_gateway(directory, database_url=url)
    try:
        yield gateway, rows
    finally:
        stop_gateway(gateway)  # killed by the test; its restarted successor is the test's to stop


def _sent_invites(run: TrunkCalls) -> dict[str, str]:
    """Call-ID → caller (national) of every call SIPp sent an INVITE for, read from its message trace."""
    callers = {}
    for message in run.process.messages():
        if message.sent and message.method == "INVITE" and message.call_id not in callers:
            found = re.search(r"sip:(\d+)@", message.header("From") or "")
            assert found, message.first_line
            callers[message.call_id] = found.group(1)
    return callers


def test_c4_kill_9_mid_run_every_started_call_is_written_once_after_the_restart(
    crash_world: tuple[GatewayProcess, Rows], phones: Phones, trunk: Trunk, request: pytest.FixtureRequest,
) -> None:
    gateway, rows = crash_world
    admin = Admin(gateway)
    world = LiveWorld(gateway, admin, phones, trunk)
    answering = [phones.start(gateway, "1001", USER_1001_PASSWORD), phones.start(gateway, "1002", DEMO_SIP_SECRETS["1002"])]
    # Two more colleagues in the Sales queue, so that most of the concurrent calls are answered.
    extra = [world.staff("Agent") for _ in range(2)]
    answering += [staff.phone for staff in extra if staff.phone is not None]
    [sales] = admin.get("/queue-groups")["items"]
    admin.patch(f"/queue-groups/{sales['id']}", {"member_ids": [*sales["member_ids"], *(s.id for s in extra)]})
    time.sleep(1.5)  # the registrar saves bindings about a second behind: all are in the database now

    def answered() -> int:
        return sum(phone.calls_answered() for phone in answering)

    callers = [f"0612{n:06d}" for n in range(CALLS)]
    # A call whose gateway died rings nowhere: SIPp cancels it after 6 s (the new gateway answers 481).
    run = trunk.start(gateway, *(TrunkCall(dialled=DIALLED, caller=c) for c in callers), talk_ms=TALK_MS,
                      concurrent=CONCURRENT, cancel_after_ms=6000, time_limit_s=80)
    wait_for(lambda: answered() >= KILL_AFTER_ANSWERED, 30,
             "calls answered before the kill", gateway.log)
    gateway.process.kill()  # SIGKILL
    gateway.process.wait()
    killed_at = time.monotonic()
    at_kill = run.result()
    started = {r.call_id for r in at_kill.calls}
    over = {r.call_id for r in at_kill.calls if r.final_status is not None and (r.final_status != 200 or r.bye_statuses)}
    in_flight = started - over
    restarted = restart_gateway(gateway, "gateway-restarted.log")
    request.addfinalizer(lambda: stop_gateway(restarted))
    down_s = time.monotonic() - killed_at
    answered_before_restart = answered()

    run.wait()
    sent = _sent_invites(run)
    assert set(sent) >= started and len(sent) == CALLS, (len(sent), run.result().explain())
    call_ids = sorted(sent)
    in_list = ",".join(f"'{c}'" for c in call_ids)

    def settled() -> bool:
        if metric(admin, "gateway_call_journal_pending") or metric(admin, "gateway_call_spool_calls"):
            return False
        [(written,)] = rows(f"SELECT count(*) FROM calls WHERE call_id IN ({in_list}) AND ended_at IS NOT NULL "
                            "AND crm IS NOT NULL")
        [(pending,)] = rows("SELECT count(*) FROM outbox_entries WHERE status <> 'done'")
        return written == len(call_ids) and pending == 0

    settle_s = wait_for(settled, SETTLE_WITHIN_S, "every call written and the outbox drained", restarted.log)

    # Exactly once each: the call log, the decision, the call activity, the caller's lead.
    logged = Counter(call_id for (call_id,) in rows("SELECT call_id FROM calls"))
    assert logged == Counter(call_ids), logged
    decided = Counter(key for (key,) in rows("SELECT interaction_key FROM decisions"))
    assert decided == Counter(f"call:{c}" for c in call_ids), decided
    activities = Counter(key for (key,) in rows("SELECT interaction_key FROM activities WHERE kind = 'call'"))
    assert activities == Counter(f"call:{c}" for c in call_ids), activities
    leads = rows("SELECT p.normalized, l.interaction_key FROM leads l JOIN item_phones p "
                 "ON p.item_type = 'lead' AND p.item_id = l.id")
    assert sorted(leads) == sorted((e164(sent[c]), f"call:{c}") for c in call_ids), leads
    assert metric(admin, "gateway_call_journal_failures_total") == 0
    replayed = metric(admin, "gateway_call_spool_replayed_total")
    interrupted = rows("SELECT count(*) FROM calls WHERE status IS NULL")[0][0]
    assert replayed >= len(in_flight) - 1 >= 0  # one in flight may not have reached the gateway yet

    # Registrations are back from the database: the phones never registered again, yet take calls.
    assert metric(admin, "gateway_registrations_active") >= len(answering)
    assert answered() > answered_before_restart, [phone.explain() for phone in answering]
    print(f"\nkill -9 with {len(in_flight)} of {len(started)} started calls in flight ({len(over)} over); "
          f"down {down_s:.1f} s; {replayed:.0f} calls replayed from the spool, {interrupted} ended as interrupted; "
          f"{len(call_ids)} calls sent, each logged/decided/one activity/one lead once; settled {settle_s:.1f} s")
