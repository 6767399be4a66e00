"""Live calls end to end: a real gateway on SQLite with the demo seed, configured per test through the
admin API, SIPp phones registering with the secrets set there, SIPp trunk calls to its numbers.

    world = LiveWorld(gateway, admin, phones, trunk)
    alice = world.staff("Alice", phone="answer")
    sales = world.queue([alice])
    number = world.number(sales)
    run = world.call(number, "0655000101")
    call = world.logged(run.call_ids[0])      # GET /calls?call_id=... then GET /calls/{id}, once ended

Every test gets fresh extensions, numbers and caller numbers (registrations outlive a test). The
admin API shows no activities, so `activities()` reads them from the gateway's SQLite file, read-only.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import HOST, GatewayProcess, start_gateway, stop_gateway
from tests.integration.phones import Phone, PhoneMode, Phones, start_phone
from tests.integration.trunk import Trunk, TrunkCall, TrunkCalls, TrunkRun

_EXTENSIONS = itertools.count(5101)
_DIDS = itertools.count(1)
# Short ring steps for tests that wait on a no-answer (the admin API's minimum is 5 s).
SHORT_RING_S = 5


def admin_token(gateway: GatewayProcess) -> str:
    """The demo seed's admin token, printed once at start-up."""
    match = re.search(r"admin API token \(shown once, store it now\): (\S+)", gateway.log())
    assert match, gateway.log()
    return match.group(1)


class Admin:
    """The admin API of the running gateway, as its administrator (the demo's Alice)."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.base = f"http://{HOST}:{gateway.admin_port}"
        self.token = admin_token(gateway)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def expect(self, status: int, method: str, path: str, body: Any = None) -> Any:
        got, answer = self.call(method, path, body)
        assert got == status, f"{method} {path} {body!r}: {got} {answer!r}"
        return answer

    def get(self, path: str) -> Any:
        return self.expect(200, "GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.expect(201, "POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.expect(200, "PATCH", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self.expect(200, "PUT", path, body)


@dataclass
class Staff:
    """An employee created for one test, with the phone registered under their extension (if any)."""

    id: int
    name: str
    extension: str
    phone: Phone | None


@dataclass(frozen=True)
class LiveNumber:
    """A number created for one test: `dial` is how the trunk dials it (national form)."""

    id: int
    e164: str
    dial: str


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 10.0, explain: Callable[[], str] = str) -> Any:
    """Poll `probe` until it returns something truthy; AssertionError naming `what` past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}\n{explain()}")
        time.sleep(0.05)


class LiveWorld:
    """One test's employees, phones, queue groups and numbers on the module's gateway."""

    def __init__(self, gateway: GatewayProcess, admin: Admin, phones: Phones, trunk: Trunk) -> None:
        self.gateway = gateway
        self.admin = admin
        self.phones = phones
        self.trunk = trunk

    # -- configuration through the admin API ----------------------------------------------------
    def employee(self, name: str, *, mobiles: tuple[str, ...] = (), secret: bool = True) -> Staff:
        """An employee with a fresh extension (and a SIP secret unless `secret` is False), no phone yet."""
        extension = str(next(_EXTENSIONS))
        body: dict[str, Any] = {"name": f"{name} {extension}", "extension": extension, "phones": list(mobiles),
                                "default_region": "FR"}
        if secret:
            body["sip_secret"] = sip_secret(extension)
        row = self.admin.post("/employees", body)
        return Staff(row["id"], row["name"], extension, None)

    def queue(self, members: list[Staff], strategy: str = "in_order", ring_time_s: int = SHORT_RING_S,
              **chain: Any) -> dict[str, Any]:
        body = {"name": f"queue {next(_DIDS)}", "strategy": strategy, "ring_time_s": ring_time_s,
                "member_ids": [m.id for m in members], **chain}
        return self.admin.post("/queue-groups", body)  # type: ignore[no-any-return]

    def number(self, group: dict[str, Any] | None, **settings: Any) -> LiveNumber:
        """A rented number of its own (+33 1 84 89 NN NN) ringing `group`, with CRM settings given."""
        serial = next(_DIDS)
        national = f"0184890{serial:03d}"
        body = {"kind": "rented", "number": national, "name": f"line {serial}", "default_region": "FR",
                "queue_group_id": group["id"] if group else None, "create_for": "all", **settings}
        row = self.admin.post("/numbers", body)
        return LiveNumber(row["id"], row["e164"], national)

    def phone(self, staff: Staff, mode: PhoneMode = "answer", **options: Any) -> Phone:
        """Register `staff`'s phone with the secret just set through the admin API: the API reloads the
        gateway's routing directory before it answers, so the first REGISTER must already succeed."""
        staff.phone = start_phone(self.gateway, staff.extension, sip_secret(staff.extension), mode,
                                  registered_within_s=5, directory=self.phones.directory, **options)
        self.phones.started.append(staff.phone)
        return staff.phone

    def staff(self, name: str, phone: PhoneMode | None = "answer", **options: Any) -> Staff:
        """An employee and, unless `phone` is None, their registered phone in that mode."""
        member = self.employee(name)
        if phone is not None:
            self.phone(member, phone, **options)
        return member

    # -- calls -------------------------------------------------------------------------------
    def call(self, number: LiveNumber, caller: str | None, **options: Any) -> TrunkRun:
        return self.trunk.call(self.gateway, TrunkCall(dialled=number.dial, caller=caller), **options)

    def start_call(self, number: LiveNumber, caller: str | None, **options: Any) -> TrunkCalls:
        return self.trunk.start(self.gateway, TrunkCall(dialled=number.dial, caller=caller), **options)

    # -- what the gateway recorded ------------------------------------------------------------
    def log_entry(self, call_id: str) -> dict[str, Any] | None:
        page = self.admin.get(f"/calls?call_id={urllib.parse.quote(call_id)}")
        assert page["total"] <= 1, page
        return page["items"][0] if page["items"] else None

    def logged(self, call_id: str, *, crm: bool = True, timeout: float = 10.0) -> dict[str, Any]:
        """The call's log entry with its items and explanation, once it has ended and (`crm`: a call to
        one of the numbers) its CRM outcome is decided and written (its activity too, when planned)."""
        def ended() -> dict[str, Any] | None:
            entry = self.log_entry(call_id)
            return entry if entry and entry["ended_at"] and (entry["crm"] is not None or not crm) else None

        entry = wait_for(f"call {call_id} ended in the call log", ended, timeout, self.gateway.log)
        wait_for(f"call {call_id}'s CRM writes applied", lambda: not self.outbox_pending(entry["interaction_key"]),
                 timeout, self.gateway.log)
        return self.admin.get(f"/calls/{entry['id']}")  # type: ignore[no-any-return]

    def items(self, entry: dict[str, Any], how: str | None = None) -> list[tuple[str, int]]:
        return [(item["type"], item["id"]) for item in entry["items"] if how is None or item["how"] == how]

    def item(self, item_type: str, item_id: int) -> dict[str, Any]:
        return self.admin.get(f"/items/{item_type}/{item_id}")  # type: ignore[no-any-return]

    def items_with_phone(self, item_type: str, e164: str) -> list[dict[str, Any]]:
        page = self.admin.get(f"/items/{item_type}?limit=200")
        return [item for item in page["items"] if e164 in [normalized(p) for p in item["phones"]]]

    # -- the database, read-only: what the admin API does not show --------------------------
    def rows(self, query: str, *params: Any) -> list[sqlite3.Row]:
        database = Path(self.gateway.log_path.parent, "gateway.db")
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            connection.row_factory = sqlite3.Row
            return connection.execute(query, params).fetchall()

    def activities(self, interaction_key: str) -> list[sqlite3.Row]:
        return self.rows("SELECT id, kind, direction, completed_at, responsible_id, details FROM activities "
                         "WHERE interaction_key = ? ORDER BY id", interaction_key)

    def outbox_pending(self, interaction_key: str) -> int:
        [row] = self.rows("SELECT count(*) AS n FROM outbox_entries WHERE interaction_key = ? AND status = 'pending'",
                          interaction_key)
        return int(row["n"])


def sip_secret(extension: str) -> str:
    return f"live-secret-{extension}"


def normalized(phone: str) -> str:
    """A French phone as written in an item, in E.164 (the items store what the CRM was given)."""
    digits = re.sub(r"[^\d+]", "", phone)
    return "+33" + digits[1:] if digits.startswith("0") else digits


def module_gateway(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[GatewayProcess]:
    """A gateway of one module's own on SQLite with the demo seed (its admin token in its log)."""
    running = start_gateway(tmp_path_factory.mktemp(name))
    try:
        yield running
    finally:
        stop_gateway(running)

