"""The gateway's registrations at its provider trunks: one `OutboundRegistration` per registering trunk,
driven through the B2BUA's endpoint (the side effects of `gateway.trunks.registration` live here).

Runs inside the SIP loop: `sync` and `stop_all` must be called there (`Gateway.run_in_sip`), as the
answers and timers are. Log lines name the trunk, never its username or secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.sip.events import Target
from gateway.sip.message import Request, Response
from gateway.trunks.model import TrunkSpec
from gateway.trunks.registration import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    UNREACHABLE,
    OutboundRegistration,
    RegistrationState,
    RegistrationStatus,
)

log = logging.getLogger(__name__)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class RegistrationPort(Protocol):
    """What of `gateway.b2bua.controller.B2bua` the registrations use."""

    def request(self, request: Request, target: Target, now: float) -> object | None: ...

    def own_transaction(self, transaction: object, owner: Any) -> None: ...

    def schedule(self, deadline: float, callback: Callable[[float], None]) -> Cancellable: ...

    def new_tag(self) -> str: ...

    def new_call_id(self) -> str: ...


def registration_settings(trunk: TrunkSpec) -> tuple[object, ...]:
    """What a registration is made of: a change to any of these starts it again."""
    return (trunk.host, trunk.port, trunk.transport, trunk.username, trunk.secret, trunk.register_expires)


@dataclass(eq=False)
class _Entry:
    trunk: TrunkSpec
    machine: OutboundRegistration
    timer: Cancellable | None = None


@dataclass(frozen=True, slots=True)
class TrunkRegistrationMetric:
    """One trunk's line in /metrics."""

    trunk: str
    registered: bool
    failures: int


class TrunkRegistrations:
    """Keeps the gateway registered at every trunk whose `TrunkSpec.registers` is true.

    `sent_by` is the endpoint's own address per transport (filled when SIP listens); `clock` is the
    SIP loop's clock, `wall` the wall clock (status times are shown as UTC wall-clock time).
    """

    def __init__(
        self,
        port: RegistrationPort,
        sent_by: Mapping[str, tuple[str, int]],
        *,
        clock: Callable[[], float],
        wall: Callable[[], float] = time.time,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
    ) -> None:
        self.port = port
        self.sent_by = sent_by
        self.clock = clock
        self.wall = wall
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._entries: dict[int, _Entry] = {}
        self._transactions: dict[object, tuple[_Entry, int]] = {}
        self._leaving: set[_Entry] = set()  # stopped, awaiting the answer to their un-REGISTER
        self._failures: dict[int, int] = {}  # by trunk id, kept across restarts: a counter never goes back
        self._on_all_left: Callable[[], None] | None = None

    # -- what the gateway drives ---------------------------------------------------------
    def sync(self, trunks: Mapping[int, TrunkSpec], now: float) -> None:
        """Register at the trunks that register and are new, stop those gone or no longer registering,
        start again those whose registration settings changed (renames just relabel)."""
        wanted = {trunk_id: trunk for trunk_id, trunk in trunks.items() if trunk.registers}
        for trunk_id in [known for known in self._entries if known not in wanted]:
            self._stop(trunk_id, now, unregister=True)
        for trunk_id, trunk in wanted.items():
            entry = self._entries.get(trunk_id)
            if entry is not None and registration_settings(entry.trunk) == registration_settings(trunk):
                entry.trunk = trunk
                continue
            if entry is not None:
                old = entry.trunk
                # The same binding at the same registrar: the new REGISTER replaces it, and an
                # un-REGISTER arriving after it would remove it.
                same_binding = (old.host, old.port, old.transport, old.username) == (
                    trunk.host, trunk.port, trunk.transport, trunk.username)
                self._stop(trunk_id, now, unregister=not same_binding)
            self._start(trunk_id, trunk, now)

    def stop_all(self, now: float, on_done: Callable[[], None] | None = None) -> None:
        """Un-REGISTER everywhere (the gateway is stopping); `on_done()` once no un-REGISTER awaits its answer."""
        self._on_all_left = on_done
        for trunk_id in list(self._entries):
            self._stop(trunk_id, now, unregister=True)
        self._tell_all_left()

    def _tell_all_left(self) -> None:
        if not self._leaving and self._on_all_left is not None:
            callback, self._on_all_left = self._on_all_left, None
            callback()

    @property
    def pending_unregisters(self) -> int:
        return len(self._leaving)

    # -- what the admin API, /metrics and the call side read -------------------------------
    def status(self, trunk_id: int) -> dict[str, Any] | None:
        """The registration of `trunk_id` as JSON-able data; None when the gateway does not register there."""
        entry = self._entries.get(trunk_id)
        if entry is None:
            return None
        status: RegistrationStatus = entry.machine.status
        registrar = entry.machine.registrar
        return {
            "trunk_id": trunk_id,
            "trunk": entry.trunk.name,
            "state": status.state.value,
            "last_status": status.last_status,
            "last_reason": status.last_reason,
            "registered_until": self._wall_time(status.registered_until),
            "next_attempt": self._wall_time(status.next_attempt),
            "failures": status.failures,
            "failures_in_a_row": status.failures_in_a_row,
            "registrar": f"{registrar[1]}:{registrar[2]}" if registrar is not None else None,
        }

    def registration(self, trunk_id: int) -> RegistrationStatus | None:
        """The registration of `trunk_id` as the machine sees it (times on the SIP loop clock)."""
        entry = self._entries.get(trunk_id)
        return entry.machine.status if entry is not None else None

    def registrar_address(self, trunk_id: int) -> Target | None:
        """Where the last 2xx of `trunk_id`'s registration came from."""
        entry = self._entries.get(trunk_id)
        return entry.machine.registrar if entry is not None else None

    def trusted_source(self, host: str, port: int) -> int | None:
        """The trunk whose registrar answered our REGISTER from (host, port): a provider we register to.

        Kept while the gateway registers there, failing or not: the provider's address does not
        change because one refresh went unanswered."""
        for trunk_id, entry in self._entries.items():
            registrar = entry.machine.registrar
            if registrar is not None and registrar[1] == host and registrar[2] == port:
                return trunk_id
        return None

    def registrar_host(self, host: str) -> bool:
        """Whether `host` is the address of a registrar we register to (any port): a provider whose
        calls must never be rate-limited or banned as a stranger's."""
        return any(entry.machine.registrar is not None and entry.machine.registrar[1] == host
                   for entry in self._entries.values())

    def metrics(self) -> Iterator[TrunkRegistrationMetric]:
        for trunk_id, entry in self._entries.items():
            yield TrunkRegistrationMetric(
                entry.trunk.name, entry.machine.state is RegistrationState.REGISTERED,
                self._failures.get(trunk_id, 0) + entry.machine.failures,
            )

    # -- ClientOwner ---------------------------------------------------------------------
    def on_response(self, transaction: object, response: Response, source: Target, now: float) -> None:
        found = self._transactions.get(transaction)
        if found is None:
            return
        if response.status >= 200:
            del self._transactions[transaction]
        entry, _ = found
        self._drive(entry, lambda: entry.machine.on_response(response, source, now), now)

    def on_no_answer(self, transaction: object, status: int, now: float) -> None:
        found = self._transactions.pop(transaction, None)
        if found is not None:
            entry, cseq = found
            self._drive(entry, lambda: entry.machine.on_no_answer(cseq, status, now), now)

    # -- inside ------------------------------------------------------------------------------
    def _start(self, trunk_id: int, trunk: TrunkSpec, now: float) -> None:
        local = self.sent_by.get(trunk.transport)
        if local is None:
            log.warning("trunk %s (#%d): the gateway does not listen on %s, not registering",
                        trunk.name, trunk_id, trunk.transport)
            return
        machine = OutboundRegistration(
            trunk, local, call_id=self.port.new_call_id(), tag=self.port.new_tag(),
            backoff_base=self.backoff_base, backoff_cap=self.backoff_cap,
        )
        entry = _Entry(trunk, machine)
        self._entries[trunk_id] = entry
        log.info("trunk %s (#%d): registering at %s", trunk.name, trunk_id, machine.request_uri)
        self._drive(entry, lambda: machine.start(now), now)

    def _stop(self, trunk_id: int, now: float, *, unregister: bool) -> None:
        entry = self._entries.pop(trunk_id)
        self._failures[trunk_id] = self._failures.get(trunk_id, 0) + entry.machine.failures
        log.info("trunk %s (#%d): registration stopped", entry.trunk.name, trunk_id)
        self._drive(entry, lambda: entry.machine.stop(now, unregister=unregister), now)

    def _drive(self, entry: _Entry, step: Callable[[], Request | None], now: float) -> None:
        """Feed the machine (`step`), send what it asks for, re-arm its timer, log what changed."""
        machine = entry.machine
        before = (machine.state, machine.last_status, machine.failures)
        request = step()
        while request is not None:
            cseq = machine.pending_cseq or 0
            target = (entry.trunk.transport, entry.trunk.host, entry.trunk.port)
            transaction = self.port.request(request, target, now)
            if transaction is not None:
                self._transactions[transaction] = (entry, cseq)
                self.port.own_transaction(transaction, self)
                break
            request = machine.on_no_answer(cseq, UNREACHABLE, now)
        self._arm(entry)
        if machine.finished:
            self._leaving.discard(entry)
            self._tell_all_left()
        elif machine.state is RegistrationState.STOPPED:
            self._leaving.add(entry)
        if (machine.state, machine.last_status, machine.failures) != before:
            self._log_change(entry)

    def _arm(self, entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        deadline = entry.machine.deadline
        if deadline is not None:
            entry.timer = self.port.schedule(deadline, lambda now: self._on_timer(entry, now))

    def _on_timer(self, entry: _Entry, now: float) -> None:
        entry.timer = None
        self._drive(entry, lambda: entry.machine.on_timer(now), now)

    def _log_change(self, entry: _Entry) -> None:
        machine = entry.machine
        name = entry.trunk.name
        if machine.state is RegistrationState.REGISTERED:
            log.info("trunk %s: registered until %s", name, self._wall_time(machine.registered_until))
        elif machine.state is RegistrationState.FAILING:
            log.warning("trunk %s: registration failing (%s %s), next attempt at %s (failure %d in a row)",
                        name, machine.last_status, machine.last_reason, self._wall_time(machine.next_attempt),
                        machine.failures_in_a_row)

    def _wall_time(self, loop_time: float | None) -> str | None:
        if loop_time is None:
            return None
        wall = loop_time - self.clock() + self.wall()
        return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
