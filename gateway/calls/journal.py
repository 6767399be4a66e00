"""The call journal: every call into the call log (SPEC R7) and into the CRM (section 1), never blocking SIP.

A `CallObserver` of the B2BUA plus `routed()` from the router. Each event becomes a job of the call's
Call-ID on a `KeyedWork`, so one call's writes run in order (its end never before its start) and a
database that is down only delays them (C4). The CRM decision is stored once per Call-ID by
`call_hooks.plan_call` (C2); the router's decision, made inside the routing budget, is reused when it
was made, otherwise the CRM outcome is decided here, later.

Two calls from one new caller racing (the first lead still in the outbox when the second is decided)
would both create a lead. Decisions for one caller's number are therefore taken one at a time, and a
decision waits (bounded) until the creation queued by the previous one for that number is applied,
so it sees the new lead and attaches to it (T7).

They are also taken in the order the calls came (C4: "written later, once, in order"). After an outage
each call's writes are retried on their own back-off, so a caller's second call may be tried again
before their first; it waits its turn, so the first call still creates the lead and the second attaches.

With a `CallSpool` (`gateway run` has one) every event is first written to local disk, so a `kill -9`
loses nothing: at the next start `replay()` writes every call the database does not hold yet, once (the
writes are idempotent per Call-ID, C2), ending the calls that were up as interrupted. Memory stays
bounded during a long outage: beyond `memory_calls` calls with writes waiting, a new call's writes live
in the spool only ("spilled") and are read back, in the order the calls came, as the backlog drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.b2bua.events import (
    CallAnswered,
    CallEnded,
    CallFailed,
    CallOffered,
    CallStarted,
    CallTransferred,
    LegOffered,
)
from gateway.calls.group_commit import GroupCommit
from gateway.calls.journal_forward import ForwardedWork
from gateway.calls.journal_records import (
    ANSWERED as ANSWERED_RECORD,
)
from gateway.calls.journal_records import (
    ENDED,
    INTERRUPTED_NOTE,
    ROUTED,
    SEEN,
    TRANSFERRED,
    EndRecord,
    RoutedCall,
    decode_call,
    encode_call,
    utcnow,
)
from gateway.calls.journal_spool import SpooledJournal
from gateway.calls.keyed_work import RETRYABLE, KeyedWork
from gateway.calls.spool import CallSpool, record_line
from gateway.crm_bridge import call_hooks
from gateway.crm_bridge.backend import CrmBackend
from gateway.crm_bridge.linking import Direction
from gateway.crm_bridge.service import LINK_PLAN
from gateway.routing.targets import Target
from gateway.storage import call_log
from gateway.storage.models import OutboxEntry

log = logging.getLogger(__name__)

#: How long a new caller's second call waits for the first call's lead to be written (then decides anyway).
CREATION_WAIT = 15.0
#: How long a queued creation is remembered for its caller's next call, once many are remembered.
CREATION_MEMORY = 600.0
SWEEP_INTERVAL = 60.0

# Call log outcomes.
ANSWERED, MISSED, REJECTED, FAILED = "answered", "missed", "rejected", "failed"
# What the caller was answered when nobody took the call: it rang, or the caller gave up.
_MISSED_STATUSES = frozenset({408, 480, 486, 487, 600, 603})


__all__ = ["CallJournal", "RoutedCall", "utcnow"]


class CallJournal(SpooledJournal):
    """Writes calls to the call log and the CRM behind the call, in order per call."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        backend: CrmBackend,
        *,
        wake_outbox: Callable[[], None] = lambda: None,
        employee_for_extension: Callable[[str | None], int | None] = lambda _ext: None,
        number_facts: Callable[[int | None], call_hooks.NumberFacts | None] = lambda _number_id: None,
        work: KeyedWork | None = None,
        spool: CallSpool | None = None,
        memory_calls: int = 1000,
        forward: ForwardedWork | None = None,
        on_finished: Callable[[str], None] = lambda _call_id: None,
        group: GroupCommit | None = None,
    ) -> None:
        """`spool`: where each call's records go first (opened by the caller); `memory_calls`: how many
        calls may have writes waiting before new calls' writes stay in the spool only; `forward`: the
        jobs run in the writer process (see `gateway.calls.journal_forward`), not here; `on_finished`:
        told each Call-ID whose end is written (the writer process tells the gateway's); `group`: the
        jobs' writes share transactions (the writer process; see `gateway.calls.group_commit`)."""
        self.sessionmaker = sessionmaker
        self.backend = backend
        self.wake_outbox = wake_outbox
        self.employee_for_extension = employee_for_extension
        # The number's settings as the routing directory holds them: a call decided here (past the routing
        # budget, or its caller's earlier call just created the lead) reads only the caller's CRM knowledge.
        self.number_facts = number_facts
        self.work = work if work is not None else KeyedWork()  # an idle KeyedWork is falsy (len 0)
        self.forwarded = forward
        if forward is not None:
            forward.on_done = self._writer_done
        self.on_finished = on_finished
        self.group = group
        self._calls: dict[str, RoutedCall] = {}
        self._answered_by: dict[str, int | None] = {}
        # Call-ID → (offered, answered at, by whom) of an answer whose call ended before it was written.
        self._answers_with_end: dict[str, tuple[list[int], datetime, int | None]] = {}
        # Who was offered each call, written with its answer or its end: one transaction fewer per offer.
        self._offered: dict[str, list[int]] = {}
        # Caller E.164 → (interaction key whose item creation is queued, when): forgotten once old
        # enough that the creation is applied or parked, so the map holds recent new callers only.
        self._creating: dict[str, tuple[str, float]] = {}
        self._next_sweep = 0.0
        self._undecided: dict[str, deque[str]] = {}  # caller E.164 → their calls not yet decided, in call order
        self._turns: dict[str, asyncio.Event] = {}  # Call-ID → set once it is the first of its caller's queue
        # Calls still being routed → the status they failed with before routing answered (None: not yet).
        self._routing: dict[str, int | None] = {}
        # SPEC R5, per answered call: who talked to the caller since when (SIP clock), and its transfers.
        self._talks: dict[str, list[tuple[int | None, float]]] = {}
        self._transfers: dict[str, list[dict[str, Any]]] = {}
        self.spool = spool
        self.memory_calls = max(memory_calls, 1)
        self._spilled: dict[str, None] = {}  # Call-IDs whose writes wait in the spool only, in call order
        self._restarted_at = utcnow()

    @property
    def pending(self) -> KeyedWork | ForwardedWork:
        """What the backlog is measured on (metrics, memory cap, shutdown): the jobs here, or the writer's."""
        return self.forwarded if self.forwarded is not None else self.work

    # -- from the router -------------------------------------------------------------------
    def lookup_started(self, call: RoutedCall) -> None:
        """The router knows the number and the caller and starts its CRM lookup: spooled only, so a
        crash before `routed` still logs the call."""
        self._spool(call.call_id, SEEN, encode_call(call, routed=False))

    def routed(self, call: RoutedCall) -> None:
        """The router decided (or refused) a call: log its start and decide its CRM outcome."""
        failed_early = self._routing.pop(call.call_id, None)
        self._calls[call.call_id] = call
        line = self._spool(call.call_id, ROUTED, encode_call(call))
        if self.spool is not None and (self._spilled or self.pending.keys >= self.memory_calls):
            self._spilled[call.call_id] = None  # back-pressure: read back from the spool once there is room
        else:
            self._submit_routed(call, line)
        if failed_early is not None:
            # The caller gave up during the lookup (CANCEL): the call is over before it rang.
            self.call_failed(CallFailed(call.call_id, failed_early, 0.0))

    def routed_call(self, call_id: str) -> RoutedCall | None:
        """What the router decided for a call still on (None: not one of the numbers', or over)."""
        return self._calls.get(call_id)

    def not_logged(self, call_id: str) -> None:
        """The router decided a call the call log does not hold (an extension, a static route)."""
        self._routing.pop(call_id, None)
        if self.spool is not None:
            self.spool.done(call_id)

    # -- CallObserver ------------------------------------------------------------------------
    def call_started(self, event: CallStarted) -> None:
        self._routing[event.call_id] = None

    def call_offered(self, event: CallOffered) -> None:
        return None

    def leg_offered(self, event: LegOffered) -> None:
        employee_id = self._employee(event.target)
        if employee_id is not None and event.call_id in self._calls:
            self._offered.setdefault(event.call_id, []).append(employee_id)

    def call_answered(self, event: CallAnswered) -> None:
        if event.call_id not in self._calls:
            return
        employee_id = self._employee(event.target)
        self._answered_by[event.call_id] = employee_id
        self._talks[event.call_id] = [(employee_id, event.at)]
        data = {"offered": self._offered.pop(event.call_id, []), "at": utcnow().isoformat(), "employee_id": employee_id}
        self._event(self._calls[event.call_id], ANSWERED_RECORD, data)

    def call_failed(self, event: CallFailed) -> None:
        call = self._calls.pop(event.call_id, None)
        if call is None:
            if event.call_id in self._routing:
                self._routing[event.call_id] = event.status
            return
        # Nobody to ring (480) or nobody answered is a missed call, to call back; a number that does not
        # exist (404) is a rejected one; anything else failed.
        if event.status in _MISSED_STATUSES:
            outcome = MISSED
        else:
            outcome = REJECTED if not call.decision.forwards and event.status < 500 else FAILED
        end = EndRecord(outcome, event.status, None, 0.0, self._offered.pop(event.call_id, []), utcnow())
        self._event(call, ENDED, end.encode())

    def call_ended(self, event: CallEnded) -> None:
        call = self._calls.pop(event.call_id, None)
        if call is None:
            return
        answered_by = self._answered_by.pop(event.call_id, None)
        offered = self._offered.pop(event.call_id, [])
        talks = self._talks.pop(event.call_id, [])
        transfers = self._transfers.pop(event.call_id, None)
        legs = _legs(talks, event.at) if transfers else None
        end = EndRecord(ANSWERED, 200, answered_by, event.duration, offered, utcnow(), legs, transfers)
        self._event(call, ENDED, end.encode())

    def call_transferred(self, event: CallTransferred) -> None:
        """R5: the call stays one call (one log entry, one CRM activity) whoever holds it; T11 may move
        the lead this call created to the colleague it was passed to (the linking engine decides)."""
        call = self._calls.get(event.call_id)
        if call is None:
            return
        self._talks.setdefault(event.call_id, []).append((event.to_employee_id, event.at))
        self._transfers.setdefault(event.call_id, []).append({
            "kind": event.kind, "from_employee_id": event.from_employee_id, "to_employee_id": event.to_employee_id,
            "at": utcnow().isoformat(), "consultation_call_id": event.consultation_call_id,
        })
        to = event.to_employee_id
        if call.number_id is not None and call.direction == Direction.INBOUND.value and to is not None:
            self._event(call, TRANSFERRED, {"to": to})

    def _employee(self, target: Target | None) -> int | None:
        if target is None:
            return None
        if target.employee_id is not None:
            return target.employee_id
        return self.employee_for_extension(target.extension)

    # -- records from the gateway's process (this journal runs in the writer process) -------------
    def apply_record(self, call_id: str, kind: str, data: dict[str, Any]) -> None:
        """Queue the job of a record the gateway's journal forwarded (`ForwardedWork`), as it would have."""
        if kind == ROUTED:
            call = decode_call(data)
            self._calls[call_id] = call  # until its end: an answer written after it joins the end's transaction
            self._submit_routed(call)
            return
        known = self._calls.pop(call_id, None) if kind == ENDED else self._calls.get(call_id)
        if known is None:
            log.warning("call %s: a %r record arrived before the call's start; ignored", call_id, kind)
            return
        self._submit(known, kind, data)

    def _writer_done(self, call_id: str) -> None:
        """The writer process wrote a forwarded call's end: the spool may forget the call."""
        if self.spool is not None:
            try:
                self.spool.done(call_id)
            except OSError as error:  # closed at shutdown: the call is replayed (idempotently) next start
                log.debug("call %s: not marked done in the spool (%s)", call_id, error)
        self._read_back()

    def _submit_routed(self, call: RoutedCall, line: bytes | None = None) -> None:
        """Queue (or forward) the call's start; `line`: its record as the spool got it."""
        if self.forwarded is not None:
            self.forwarded.forward(call.call_id, line or record_line(call.call_id, ROUTED, encode_call(call)))
            return
        if call.number_id is None:
            self.work.submit(call.call_id, lambda: self._start(call))
        else:
            # The call log's row is written with the CRM decision, in one transaction.
            self._queue_decision(call)
            self.work.submit(call.call_id, lambda: self._plan(call))

    def _submit(self, call: RoutedCall, kind: str, data: dict[str, Any], line: bytes | None = None) -> None:
        """Queue the job a record stands for (live, replayed or read back from the spool alike); `line`:
        the record as the spool got it (forwarded as it is)."""
        call_id = call.call_id
        if self.forwarded is not None:
            self.forwarded.forward(call_id, line or record_line(call_id, kind, data))
            return
        if kind == ANSWERED_RECORD:
            at, offered = datetime.fromisoformat(data["at"]), list(data.get("offered") or [])
            self.work.submit(call_id, lambda: self._answer(call_id, offered, at, data.get("employee_id")))
        elif kind == TRANSFERRED:
            self.work.submit(call_id, lambda: self._transfer(call, int(data["to"])))
        elif kind == ENDED:
            end = EndRecord.decode(data)
            self.work.submit(call_id, lambda: self._end(call, end))
            # After the end (written, or skipped as a bug): the spool may forget the call.
            self.work.submit(call_id, lambda: self._call_done(call_id))

    # -- the jobs ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """A job's transaction, committed when its block ends (an error rolls it back)."""
        if self.group is not None:
            async with self.group.transaction() as session:
                yield session
            return
        async with self.work.slot, self.sessionmaker() as session:
            yield session
            await session.commit()

    async def _call_done(self, call_id: str) -> None:
        # An answer held for the end's transaction is dropped here too: an end skipped as a bug must not
        # leave it in memory for good.
        self._answers_with_end.pop(call_id, None)
        await self._finished(call_id)

    async def _transfer(self, call: RoutedCall, to: int) -> None:
        try:
            async with self._transaction() as session:
                verdict = await call_hooks.transfer_call(session, call_id=call.call_id, transferred_to=to)
        except LookupError as error:
            log.warning("call %s: transfer not applied to the CRM: %s", call.call_id, error)
            return
        if verdict.changed:
            self.wake_outbox()

    async def _answer(self, call_id: str, offered: list[int], at: datetime, employee_id: int | None) -> None:
        if call_id not in self._calls:
            # The call is over already and its end is queued behind this job: the end's transaction
            # writes the answer too (one transaction fewer for the short calls a queue takes).
            self._answers_with_end[call_id] = (offered, at, employee_id)
            return
        key = call_hooks.call_key(call_id)
        async with self._transaction() as session:
            await call_log.record_offers_and_answer(session, key, offered, answered_at=at, employee_id=employee_id)

    async def _start(self, call: RoutedCall) -> None:
        async with self._transaction() as session:
            await self._record_start(session, call)

    @staticmethod
    async def _record_start(session: AsyncSession, call: RoutedCall, crm: dict[str, Any] | None = None) -> bool:
        return await call_log.record_start(
            session, key=call_hooks.call_key(call.call_id), call_id=call.call_id, direction=call.direction,
            number_id=call.number_id, number=call.number, party_raw=call.party_raw,
            party_e164=call.party_e164, started_at=call.started_at, routing=call.routing_record(), crm=crm,
        )

    # -- one caller's calls are decided in the order they came ---------------------------------------
    def _queue_decision(self, call: RoutedCall) -> None:
        phone = call.party_e164
        if phone is None or call.call_id in self._turns:  # a call routed again keeps its place
            return
        queue = self._undecided.setdefault(phone, deque())
        queue.append(call.call_id)
        turn = self._turns[call.call_id] = asyncio.Event()
        if len(queue) == 1:
            turn.set()

    def _pass_turn(self, phone: str, call_id: str) -> None:
        if self._turns.pop(call_id, None) is None:
            return
        queue = self._undecided[phone]
        queue.remove(call_id)
        if queue:
            self._turns[queue[0]].set()
        else:
            del self._undecided[phone]

    async def _plan(self, call: RoutedCall) -> None:
        phone = call.party_e164
        if phone is None:
            await self._plan_now(call, call.crm)
            return
        turn = self._turns.get(call.call_id)
        if turn is not None:
            await turn.wait()
        try:
            await self._plan_in_turn(call, phone)
        except RETRYABLE:
            raise  # still its turn: KeyedWork tries it again and the caller's later calls keep waiting
        except BaseException:
            self._pass_turn(phone, call.call_id)  # skipped for good (a bug) or cancelled: never block the rest
            raise
        self._pass_turn(phone, call.call_id)

    async def _plan_in_turn(self, call: RoutedCall, phone: str) -> None:
        """Decide in the caller's turn (`_turns` serialises one caller's decisions, so no lock here)."""
        now = asyncio.get_running_loop().time()
        self._forget_old_creations(now)
        pending = self._creating.get(phone)
        if pending is not None and pending[0] != call_hooks.call_key(call.call_id):
            await self._wait_applied(pending[0])
            self._creating.pop(phone, None)
            decided = None  # the caller may be known now: decide again
        else:
            decided = call.crm
        plan = await self._plan_now(call, decided)
        if plan.create:
            self._creating[phone] = (plan.interaction_key, now)

    def _forget_old_creations(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        horizon = now - CREATION_MEMORY
        self._creating = {phone: entry for phone, entry in self._creating.items() if entry[1] >= horizon}

    async def _plan_now(
        self, call: RoutedCall, decided: call_hooks.CallDecision | call_hooks.DecidedPlan | None
    ) -> Any:
        async with self._transaction() as session:
            plan = await call_hooks.plan_call(
                session, call_id=call.call_id, number=call.number, party_raw=call.crm_party,
                direction=call.direction, backend=self.backend, now=call.started_at, decided=decided,
                agent_id=call.agent_id, facts=self.number_facts(call.number_id),
            )
            crm = {"action": str(plan.action), "rule_ids": list(plan.rule_ids), "notes": list(plan.notes),
                   "responsible_id": plan.responsible_id}
            # The row and its CRM outcome in one INSERT; a row a replay finds already there gets the
            # outcome only if it has none (the first stands).
            if not await self._record_start(session, call, crm):
                await call_log.record_crm(session, call_hooks.call_key(call.call_id), crm)
        self.wake_outbox()
        return plan

    async def _wait_applied(self, key: str) -> None:
        """Until the item creations queued for `key` are applied, at most CREATION_WAIT seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CREATION_WAIT
        while loop.time() < deadline:
            async with self.work.slot, self.sessionmaker() as session:
                waiting = await session.scalar(
                    sa.select(sa.func.count()).select_from(OutboxEntry).where(
                        OutboxEntry.interaction_key == key, OutboxEntry.kind == LINK_PLAN,
                        OutboxEntry.status == "pending",
                    )
                )
            if not waiting:
                return
            self.wake_outbox()
            await asyncio.sleep(0.05)
        log.warning("call %s: its new item is still not written; deciding the next call without it", key)

    async def _end(self, call: RoutedCall, end: EndRecord) -> None:
        key = call_hooks.call_key(call.call_id)
        answer = self._answers_with_end.get(call.call_id)
        async with self._transaction() as session:
            if answer is not None:
                offered, at, employee_id = answer
                await call_log.record_offers_and_answer(session, key, offered, answered_at=at, employee_id=employee_id)
            # Ended by the run that crashed (its spool's "done" was lost with it), or never started (its
            # start was a bug, skipped): the end and what goes with it are written once only.
            ended_here = await call_log.end_first(session, key, ended_at=end.ended_at, outcome=end.outcome,
                                                  status=end.status)
            if ended_here:
                await self._with_end(session, call, end, key)
        self._answers_with_end.pop(call.call_id, None)
        if ended_here:
            self.wake_outbox()

    @staticmethod
    async def _with_end(session: AsyncSession, call: RoutedCall, end: EndRecord, key: str) -> None:
        if end.offered:
            await call_log.record_offers(session, key, end.offered)
        if end.transfers:
            await call_log.record_transfers(session, key, transfers=end.transfers, legs=end.legs or [])
        if end.status is None:
            await call_log.record_note(session, key, INTERRUPTED_NOTE)
        if call.number_id is not None:
            await call_hooks.finish_call(
                session, call_id=call.call_id, answered_by=end.answered_by, duration_s=max(end.duration, 0.0),
                ended_at=end.ended_at, legs=end.legs,
            )


def _legs(talks: list[tuple[int | None, float]], ended_at: float) -> list[dict[str, Any]]:
    """Who talked to the caller, in order, and for how many seconds (each until the next took over)."""
    ends = [since for _, since in talks[1:]] + [ended_at]
    return [{"employee_id": employee_id, "seconds": round(max(end - since, 0.0), 3)}
            for (employee_id, since), end in zip(talks, ends, strict=True)]
