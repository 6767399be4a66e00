"""SPEC T1: the registrations of every provider trunk, driven through a B2BUA-shaped port on a fake clock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.metrics import TrunkRegistrationCollector
from gateway.sip.events import Target
from gateway.sip.message import Request
from gateway.trunks.model import TrunkTrust
from gateway.trunks.registrations import TrunkRegistrations
from tests.trunks.provider import LOCAL, REGISTRAR, SECRET, Provider, answer, provider_trunk

WALL_AT_ZERO = 1_767_225_600.0  # 2026-01-01T00:00:00Z when the loop clock reads 0


@dataclass
class Timer:
    deadline: float
    callback: Callable[[float], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakePort:
    """Records what the registrations send and schedule; `refuse` makes sending fail."""

    sent: list[tuple[Request, Target, object]] = field(default_factory=list)
    owners: dict[object, object] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)
    refuse: bool = False
    serial: int = 0

    def request(self, request: Request, target: Target, now: float) -> object | None:
        if self.refuse:
            return None
        self.serial += 1
        transaction = f"txn-{self.serial}"
        self.sent.append((request, target, transaction))
        return transaction

    def own_transaction(self, transaction: object, owner: object) -> None:
        self.owners[transaction] = owner

    def schedule(self, deadline: float, callback: Callable[[float], None]) -> Timer:
        timer = Timer(deadline, callback)
        self.timers.append(timer)
        return timer

    def new_tag(self) -> str:
        return f"tag{self.serial}"

    def new_call_id(self) -> str:
        return f"call-{len(self.sent)}-{len(self.timers)}"

    def live_timers(self) -> list[Timer]:
        return [timer for timer in self.timers if not timer.cancelled]

    def last(self) -> tuple[Request, object]:
        request, _, transaction = self.sent[-1]
        return request, transaction


class World:
    def __init__(self, **options: float) -> None:
        self.now = 0.0
        self.port = FakePort()
        self.provider = Provider()
        self.registrations = TrunkRegistrations(self.port, {"udp": LOCAL, "tcp": LOCAL}, clock=lambda: self.now,
                                                wall=lambda: WALL_AT_ZERO + self.now, **options)

    def answer_last(self, make: Callable[[Request], object], source: Target = REGISTRAR) -> None:
        request, transaction = self.port.last()
        self.registrations.on_response(transaction, make(request), source, self.now)  # type: ignore[arg-type]

    def register(self, expires: int = 600) -> None:
        """Challenge the last REGISTER, then accept the authenticated one."""
        self.answer_last(lambda request: self.provider.challenge(request, self.now))
        request, _ = self.port.last()
        assert self.provider.verify(request, self.now)
        self.answer_last(lambda request: self.provider.accept(request, expires))

    def fire_timers(self, until: float) -> None:
        self.now = until
        for timer in self.port.live_timers():
            if timer.deadline <= until:
                timer.cancelled = True
                timer.callback(until)


def test_t1_sync_registers_only_trunks_that_register() -> None:
    world = World()
    trunks = {
        1: provider_trunk(id=1, name="acme"),
        2: provider_trunk(id=2, name="by-source", trust=TrunkTrust.SOURCE),
        3: provider_trunk(id=3, name="off", enabled=False),
        4: provider_trunk(id=4, name="tcp-acme", transport="tcp", host="10.9.9.9", port=5070),
    }
    world.registrations.sync(trunks, 0.0)
    targets = sorted(target for _, target, _ in world.port.sent)
    assert targets == [("tcp", "10.9.9.9", 5070), ("udp", "sip.acme.test", 5060)]
    assert set(world.port.owners.values()) == {world.registrations}
    assert world.registrations.status(2) is None and world.registrations.status(3) is None
    assert world.registrations.status(1)["state"] == "registering"  # type: ignore[index]


def test_t1_status_shows_registration_in_utc_wall_clock_time() -> None:
    world = World()
    world.registrations.sync({1: provider_trunk(id=1)}, 0.0)
    world.now = 5.0
    world.register(expires=300)
    status = world.registrations.status(1)
    assert status == {
        "trunk_id": 1, "trunk": "acme", "state": "registered", "last_status": 200, "last_reason": "OK",
        "registered_until": "2026-01-01T00:05:05Z", "next_attempt": "2026-01-01T00:04:05Z",
        "failures": 0, "failures_in_a_row": 0, "registrar": "198.51.100.7:5060",
    }
    assert [timer.deadline for timer in world.port.live_timers()] == [245.0]
    assert world.registrations.registrar_address(1) == REGISTRAR
    assert world.registrations.trusted_source("198.51.100.7", 5060) == 1
    assert world.registrations.trusted_source("198.51.100.7", 5061) is None
    # The guard exempts a registrar's address whatever the port: a provider's many calls are no flood.
    assert world.registrations.registrar_host("198.51.100.7")
    assert not world.registrations.registrar_host("198.51.100.8")
    assert world.registrations.status(99) is None


def test_t1_refresh_timer_sends_the_refresh() -> None:
    world = World()
    world.registrations.sync({1: provider_trunk(id=1)}, 0.0)
    world.register(expires=4)
    sent = len(world.port.sent)
    world.fire_timers(2.0)
    assert len(world.port.sent) == sent + 1
    refresh, _ = world.port.last()
    assert refresh.cseq[0] == 3 and refresh.get("Expires") == "600"


def test_t1_failure_backs_off_and_a_send_error_counts_as_unreachable() -> None:
    world = World(backoff_base=1.0, backoff_cap=4.0)
    world.registrations.sync({1: provider_trunk(id=1)}, 0.0)
    _, transaction = world.port.last()
    world.now = 32.0
    world.registrations.on_no_answer(transaction, 408, world.now)
    status = world.registrations.status(1)
    assert status is not None and (status["state"], status["last_status"]) == ("failing", 408)
    assert status["next_attempt"] == "2026-01-01T00:00:33Z"
    world.port.refuse = True
    world.fire_timers(33.0)
    status = world.registrations.status(1)
    assert status is not None and (status["last_status"], status["failures"]) == (503, 2)
    assert [timer.deadline for timer in world.port.live_timers()] == [35.0]


def test_t1_removed_trunk_is_unregistered_and_stop_all_waits_for_the_answers() -> None:
    world = World()
    world.registrations.sync({1: provider_trunk(id=1), 2: provider_trunk(id=2, name="beta", username="gw-beta")}, 0.0)
    world.answer_last(lambda request: world.provider.accept(request))  # beta: accepted without a challenge
    first_request, first_txn = world.port.sent[0][0], world.port.sent[0][2]
    world.registrations.on_response(first_txn, world.provider.accept(first_request), REGISTRAR, 0.0)
    world.registrations.sync({2: provider_trunk(id=2, name="beta", username="gw-beta")}, 1.0)
    bye, _ = world.port.last()
    assert bye.get("Expires") == "0" and bye.get("To") == "<sip:gw-acme@sip.acme.test>"
    assert world.registrations.status(1) is None and world.registrations.pending_unregisters == 1
    done: list[bool] = []
    world.registrations.stop_all(2.0, on_done=lambda: done.append(True))
    assert world.registrations.pending_unregisters == 2 and not done
    for request, _, transaction in world.port.sent[-2:]:
        world.registrations.on_response(transaction, answer(request, 200), REGISTRAR, 2.0)
    assert done == [True] and world.registrations.pending_unregisters == 0
    assert world.port.live_timers() == []


def test_t1_stop_all_with_nothing_registered_is_done_at_once() -> None:
    world = World()
    done: list[bool] = []
    world.registrations.stop_all(0.0, on_done=lambda: done.append(True))
    assert done == [True]


def test_t1_changed_settings_register_again_and_a_rename_only_relabels() -> None:
    world = World()
    world.registrations.sync({1: provider_trunk(id=1)}, 0.0)
    world.register()
    sent = len(world.port.sent)
    world.registrations.sync({1: provider_trunk(id=1, name="acme-renamed")}, 1.0)
    assert len(world.port.sent) == sent
    assert world.registrations.status(1)["trunk"] == "acme-renamed"  # type: ignore[index]

    world.registrations.sync({1: provider_trunk(id=1, name="acme-renamed", secret="rotated")}, 2.0)
    fresh, _ = world.port.last()
    assert len(world.port.sent) == sent + 1  # the same binding: replaced, not un-REGISTERed first
    assert fresh.get("Expires") == "600" and fresh.cseq[0] == 1
    assert fresh.call_id != world.port.sent[0][0].call_id
    world.provider = Provider(password="rotated")
    world.register()

    world.registrations.sync({1: provider_trunk(id=1, host="sip2.acme.test", secret="rotated")}, 3.0)
    unregister, moved = world.port.sent[-2][0], world.port.sent[-1][0]
    assert unregister.get("Expires") == "0" and world.port.sent[-2][1][1] == "sip.acme.test"
    assert moved.uri == "sip:sip2.acme.test:5060"


def test_t1_a_trunk_on_a_transport_we_do_not_listen_on_is_not_registered(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    world.registrations.sent_by = {"udp": LOCAL}
    with caplog.at_level(logging.WARNING):
        world.registrations.sync({1: provider_trunk(id=1, transport="tcp")}, 0.0)
    assert world.port.sent == [] and world.registrations.status(1) is None
    assert "does not listen on tcp" in caplog.text


def test_t1_metrics_show_each_trunk_registered_and_its_failures() -> None:
    world = World(backoff_base=1.0, backoff_cap=4.0)
    world.registrations.sync({1: provider_trunk(id=1), 2: provider_trunk(id=2, name="beta", username="gw-beta")}, 0.0)
    world.answer_last(lambda request: answer(request, 403))
    first_request, first_txn = world.port.sent[0][0], world.port.sent[0][2]
    world.registrations.on_response(first_txn, world.provider.accept(first_request), REGISTRAR, 0.0)
    registry = CollectorRegistry()
    registry.register(TrunkRegistrationCollector(world.registrations.metrics))
    text = generate_latest(registry).decode()
    assert 'gateway_trunk_registered{trunk="acme"} 1.0' in text
    assert 'gateway_trunk_registered{trunk="beta"} 0.0' in text
    assert 'gateway_trunk_registration_failures_total{trunk="beta"} 1.0' in text
    # A restart of the registration keeps the counter going.
    world.registrations.sync({1: provider_trunk(id=1), 2: provider_trunk(id=2, name="beta", username="gw-b2")}, 1.0)
    world.answer_last(lambda request: answer(request, 403))
    assert 'gateway_trunk_registration_failures_total{trunk="beta"} 2.0' in generate_latest(registry).decode()


def test_t1_log_lines_name_the_trunk_never_its_secret(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    with caplog.at_level(logging.DEBUG):
        world.registrations.sync({1: provider_trunk(id=1)}, 0.0)
        world.answer_last(lambda request: answer(request, 403))
        world.fire_timers(40.0)
        world.register()
        world.registrations.stop_all(50.0)
    assert "acme" in caplog.text and "registered until" in caplog.text and "failing" in caplog.text
    assert SECRET not in caplog.text
