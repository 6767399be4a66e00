"""The call card's events (SPEC R8, T4b): a `CallObserver` turning call events into per-employee card events.

Each employee whose phone is offered a call gets `ringing` (who calls, the number called, what the CRM
knows or, under T4b, the offer), then `answered` (who took it), `transferred` and `ended`. Event ids grow
across the hub (and across restarts: they start from the wall clock in milliseconds), so one
`Last-Event-ID` orders an employee's whole stream.

Nothing here blocks SIP: the observer methods only record and publish. The card's CRM part is read once
per call in a task of its own (`CardReader`), bounded by `READ_TIMEOUT`; until it is read, the call's
events are held back in order, so a stream never sees `answered` before the `ringing` it follows.

The read costs database queries, so it is made only when somebody can see the card: when the call's
events reach an employee with a stream open, or when a stream opens (`subscribe`) whose employee the
call's card went to. Until then the events wait, in order, held with the call; a call nobody watched
ends and is forgotten without a read.

Memory is bounded: a call's events leave the buffers `GRACE` seconds after it ended (a reconnecting
client still gets its `ended`), each employee keeps at most `FEED_CAP` events, and at most `MAX_CALLS`
calls are followed at once: a new call takes the place of the call that ended first (its grace cut
short) rather than go without a card; only when every followed call is on does it get none.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.b2bua.events import (
    CallAnswered,
    CallEnded,
    CallFailed,
    CallOffered,
    CallStarted,
    CallTransferred,
    LegOffered,
)
from gateway.calls.card_facts import caller_facts, no_crm, number_facts
from gateway.calls.card_feed import CardEvent, Feed, Subscription
from gateway.calls.journal import RoutedCall
from gateway.crm_bridge.call_hooks import call_key
from gateway.routing.targets import Target

log = logging.getLogger(__name__)

RINGING, ANSWERED, TRANSFERRED, ENDED = "ringing", "answered", "transferred", "ended"
READ_TIMEOUT = 2.0
GRACE = 60.0
FEED_CAP = 200
MAX_CALLS = 5000
#: At most one warning this often about calls that got no card.
REFUSAL_LOG_INTERVAL = 60.0
_MISSED_STATUSES = frozenset({408, 480, 486, 487, 600, 603})


class CardReader(Protocol):
    """Reads the card's CRM part of a call to one of the numbers (`gateway.calls.card_facts.crm_facts`)."""

    def __call__(self, routed: RoutedCall) -> Awaitable[dict[str, Any]]: ...


@dataclass
class _Call:
    call_id: str
    caller_user: str | None
    caller_uri: str
    dialled: str | None
    routed: RoutedCall | None = None  # the router's decision, kept from the first leg: the read may come later
    routed_kept: bool = False
    card: dict[str, Any] | None = None
    held: list[tuple[str, tuple[int, ...], dict[str, Any]]] | None = field(default_factory=list)
    recipients: list[int] = field(default_factory=list)
    reading: asyncio.Task[None] | None = None
    ended: bool = False


def _now() -> str:
    return datetime.now(UTC).isoformat()


class CardHub:
    """Card events per employee, from the B2BUA's call events; read by `GET /card/stream`."""

    def __init__(
        self,
        read: CardReader,
        *,
        routed_call: Callable[[str], RoutedCall | None] = lambda _call_id: None,
        employee_for_extension: Callable[[str | None], int | None] = lambda _ext: None,
        grace: float = GRACE,
        feed_cap: int = FEED_CAP,
        max_calls: int = MAX_CALLS,
        read_timeout: float = READ_TIMEOUT,
        wake_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.read = read
        self.routed_call = routed_call
        self.employee_for_extension = employee_for_extension
        self.grace, self.feed_cap, self.max_calls, self.read_timeout = grace, feed_cap, max_calls, read_timeout
        self.wake_outbox = wake_outbox  # the card's endpoints queue CRM writes
        self._ids = itertools.count(int(time.time() * 1000))
        self._calls: dict[str, _Call] = {}
        self._ended: dict[str, None] = {}  # the followed calls that ended, in the order they did
        self._refused = 0  # calls that got no card (every followed call was on)
        self._next_refusal_log = 0.0
        self._feeds: dict[int, Feed] = {}
        self._card_locks: dict[str, asyncio.Lock] = {}  # Call-ID → held while a card endpoint writes
        self._past_calls_lock: asyncio.Lock | None = None

    # -- the stream's side -------------------------------------------------------------------
    def subscribe(self, employee_id: int, last_event_id: int | None) -> Subscription:
        """A stream of the employee's cards; the unread cards it will show are read now, their events
        following through the stream's queue once read (a replay by Last-Event-ID shows the calls ended
        within the grace period too, a new stream only those still on)."""
        self._read_cards_for(employee_id, ended_too=last_event_id is not None)
        feed = self._feed(employee_id)
        stream = Subscription(feed.backlog(last_event_id, self._call_on))
        feed.streams.add(stream)
        return stream

    def unsubscribe(self, employee_id: int, stream: Subscription) -> None:
        feed = self._feeds.get(employee_id)
        if feed is not None:
            feed.streams.discard(stream)
            if feed.idle:
                del self._feeds[employee_id]

    def close(self) -> None:
        """End every open stream (the gateway stops: its admin API must not wait on them)."""
        for feed in self._feeds.values():
            for stream in feed.streams:
                stream.end()
            feed.streams.clear()

    def offered_to(self, call_id: str) -> tuple[int, ...]:
        """The employees a followed call's card went to (empty once it is forgotten)."""
        call = self._calls.get(call_id)
        return tuple(call.recipients) if call is not None else ()

    def lock_for(self, call_id: str) -> asyncio.Lock:
        """Held by a card endpoint writing for the call: a call followed now has its own lock, calls
        already forgotten share one (rare: a card acted on long after its call)."""
        if call_id in self._calls:
            return self._card_locks.setdefault(call_id, asyncio.Lock())
        if self._past_calls_lock is None:
            self._past_calls_lock = asyncio.Lock()
        return self._past_calls_lock

    def buffered(self) -> int:
        """Card events held in memory, every employee's together (bounded: see the module's doc)."""
        held = sum(len(employees) for call in self._calls.values() for _, employees, _ in call.held or ())
        return held + sum(len(feed.events) for feed in self._feeds.values())

    # -- CallObserver --------------------------------------------------------------------------
    def call_started(self, event: CallStarted) -> None:
        if len(self._calls) >= self.max_calls and not self._make_room():
            self._refused += 1
            now = time.monotonic()
            if now >= self._next_refusal_log:  # once a minute: under load, a line per call would cost more
                self._next_refusal_log = now + REFUSAL_LOG_INTERVAL
                log.warning("call card: %d calls on at once; %d calls got no card so far (the last: %s)",
                            self.max_calls, self._refused, event.call_id)
            return
        request = event.request
        dialled = request.request_user or request.to_user
        self._calls[event.call_id] = _Call(event.call_id, request.caller_user, request.caller_uri, dialled)

    def call_offered(self, event: CallOffered) -> None:
        return None

    def leg_offered(self, event: LegOffered) -> None:
        call = self._calls.get(event.call_id)
        employee_id = self._employee(event.target)
        if call is None or employee_id is None or employee_id in call.recipients:
            return
        if not call.routed_kept:
            call.routed, call.routed_kept = self.routed_call(call.call_id), True
        call.recipients.append(employee_id)
        self._emit(call, RINGING, (employee_id,), {"at": _now()})

    def call_answered(self, event: CallAnswered) -> None:
        call = self._calls.get(event.call_id)
        if call is not None:
            self._emit(call, ANSWERED, tuple(call.recipients), {
                "call_id": call.call_id, "answered_by": self._who(event.target), "at": _now()})

    def call_transferred(self, event: CallTransferred) -> None:
        """A transfer (SPEC R5): everyone the call's card reached hears it, the colleague too (their own
        card came with their leg's `ringing`)."""
        call = self._calls.get(event.call_id)
        if call is None:
            return
        if event.to_employee_id is not None and event.to_employee_id not in call.recipients:
            call.recipients.append(event.to_employee_id)
        self._emit(call, TRANSFERRED, tuple(call.recipients), {
            "call_id": call.call_id,
            "to": {"employee_id": event.to_employee_id} if event.to_employee_id is not None else None,
            "kind": event.kind,
            "by": event.from_employee_id,
            "at": _now(),
        })

    def call_failed(self, event: CallFailed) -> None:
        outcome = "missed" if event.status in _MISSED_STATUSES else "failed"
        self._end(event.call_id, {"outcome": outcome, "status": event.status, "duration_s": 0.0,
                                  "ended_by": None, "reason": None})

    def call_ended(self, event: CallEnded) -> None:
        self._end(event.call_id, {"outcome": "answered", "status": 200, "duration_s": round(event.duration, 3),
                                  "ended_by": event.ended_by, "reason": event.reason})

    # -- internals -------------------------------------------------------------------------------
    def _end(self, call_id: str, facts: dict[str, Any]) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return
        if not call.recipients:
            self._forget(call_id)
            return
        self._emit(call, ENDED, tuple(call.recipients), {"call_id": call_id, **facts, "at": _now()})
        call.ended = True
        self._ended[call_id] = None
        asyncio.get_running_loop().call_later(self.grace, self._forget, call_id)

    def _make_room(self) -> bool:
        """Forget the call that ended first, before its grace is over: a call on now gets its card rather
        than a reconnecting client the `ended` of an old one. False: every followed call is on."""
        oldest = next(iter(self._ended), None)
        if oldest is None:
            return False
        self._forget(oldest)
        return True

    def _forget(self, call_id: str) -> None:
        self._ended.pop(call_id, None)
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        if call.reading is not None:
            call.reading.cancel()
        self._card_locks.pop(call_id, None)
        for employee_id in call.recipients:
            feed = self._feeds.get(employee_id)
            if feed is not None:
                feed.forget_call(call_id)
                if feed.idle:
                    del self._feeds[employee_id]

    def _call_on(self, call_id: str) -> bool:
        call = self._calls.get(call_id)
        return call is not None and not call.ended

    def _feed(self, employee_id: int) -> Feed:
        feed = self._feeds.get(employee_id)
        if feed is None:
            feed = self._feeds[employee_id] = Feed(self.feed_cap)
        return feed

    def _emit(self, call: _Call, kind: str, employees: tuple[int, ...], data: dict[str, Any]) -> None:
        """Publish now, or hold in order until the card is read (a `ringing` is the card, `data` its time);
        the read starts once one of `employees` watches."""
        if call.held is None:
            self._publish(call, kind, employees, data)
            return
        call.held.append((kind, employees, data))
        if call.reading is None and any(self._watching(employee_id) for employee_id in employees):
            self._start_reading(call)

    def _watching(self, employee_id: int) -> bool:
        feed = self._feeds.get(employee_id)
        return feed is not None and bool(feed.streams)

    def _read_cards_for(self, employee_id: int, *, ended_too: bool) -> None:
        unread = [call for call in self._calls.values()
                  if call.held is not None and call.reading is None and employee_id in call.recipients
                  and (ended_too or not call.ended)]
        for call in unread:
            self._start_reading(call)

    def _publish(self, call: _Call, kind: str, employees: tuple[int, ...], data: dict[str, Any]) -> None:
        body = {**(call.card or {}), **data} if kind == RINGING else data
        for employee_id in employees:
            self._feed(employee_id).publish(CardEvent(next(self._ids), kind, call.call_id, body))

    def _start_reading(self, call: _Call) -> None:
        routed = call.routed if call.routed_kept else self.routed_call(call.call_id)
        call.card = {
            "call_id": call.call_id,
            "interaction_key": _interaction_key(routed),
            "direction": routed.direction if routed is not None else "internal",
            "caller": caller_facts(routed, call.caller_user, call.caller_uri),
            "number": number_facts(routed, call.dialled),
        }
        if routed is None or routed.number_id is None:
            self._card_read(call, no_crm("not a call to one of the numbers: the CRM records nothing of it"))
            return
        call.reading = asyncio.get_running_loop().create_task(self._read(call, routed))

    async def _read(self, call: _Call, routed: RoutedCall) -> None:
        try:
            crm = await asyncio.wait_for(self.read(routed), self.read_timeout)
        except TimeoutError:
            crm = no_crm("the CRM did not answer in time")
        except Exception:
            log.exception("call card %s: the CRM could not be read", call.call_id)
            crm = no_crm("the CRM could not be read")
        self._card_read(call, crm)

    def _card_read(self, call: _Call, crm: dict[str, Any]) -> None:
        call.card = {**(call.card or {}), "crm": crm}
        call.reading = None
        held, call.held = call.held or [], None
        for kind, employees, data in held:
            self._publish(call, kind, employees, data)

    def _employee(self, target: Target | None) -> int | None:
        if target is None:
            return None
        if target.employee_id is not None:
            return target.employee_id
        return self.employee_for_extension(target.extension)

    def _who(self, target: Target | None) -> dict[str, Any] | None:
        if target is None:
            return None
        return {"employee_id": self._employee(target), "extension": target.extension, "number": target.number,
                "kind": target.kind.value}


def _interaction_key(routed: RoutedCall | None) -> str | None:
    return call_key(routed.call_id) if routed is not None else None
