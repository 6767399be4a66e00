"""The live router: dialled number → the caller's CRM knowledge → the linking engine's plans → ring steps.

`route()` is called by the B2BUA inside a SIP handler and returns at once. What needs no database
(an extension dialled, an unknown number, the static routes) is delivered at once; a number's call
reads the caller's CRM knowledge in a task, bounded by the routing budget, and the decision re-enters
the SIP side through `post` (`SipRuntime.run_in_sip`). Past the budget, or with the database down,
the call rings the number's queue group without CRM knowledge; the journal decides its CRM outcome
later (issue 10). Routing itself is `gateway.routing.steps.route`, a pure function.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import replace

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.b2bua.events import LegOffered
from gateway.calls.directory import RoutingDirectory
from gateway.calls.journal import CallJournal, RoutedCall
from gateway.config import StaticRoute
from gateway.crm_bridge import call_hooks
from gateway.crm_bridge.backend import CrmBackend
from gateway.crm_bridge.linking import Direction, RingPlan, ring_responsible
from gateway.routing.decision import RouteDecision
from gateway.routing.model import EmployeeSpec, NumberSpec, Presence, RoutingInputs, StaticTable
from gateway.routing.numbers import CallerIdentity, caller_identity
from gateway.routing.outbound import OutboundInputs, is_outside_number, route_outbound
from gateway.routing.request import Deliver, RouteRequest
from gateway.routing.steps import route as decide_route
from gateway.routing.targets import RingStep, Target

log = logging.getLogger(__name__)

#: Runs a callback with the SIP clock's `now` inside the SIP loop (`SipRuntime.run_in_sip`).
Post = Callable[[Callable[[float], None]], None]

RULE_EXTENSION = "R1.extension"
RULE_ERROR = "R1.routing_error"
NO_CRM_BUDGET = "the CRM lookup took longer than the routing budget"
NO_CRM_DATABASE = "the database could not be read"
#: The decision of a call whose CRM lookup has just started (what the spool holds until it is routed).
UNROUTED = RouteDecision((), None, ())


class LiveRouter:
    """Implements `gateway.routing.request.Router` over the routing directory and the CRM."""

    def __init__(
        self,
        directory: RoutingDirectory,
        sessionmaker: async_sessionmaker[AsyncSession],
        backend: CrmBackend,
        journal: CallJournal,
        *,
        post: Post,
        registered: Callable[[], Container[str]],
        busy: Callable[[], frozenset[int]],
        static_routes: Sequence[StaticRoute] = (),
        static_contacts: Callable[[str], Sequence[str]] = lambda _user: (),
        budget: float = 0.3,
        party_lookup: call_hooks.PartyFinder | None = None,
    ) -> None:
        self.directory = directory
        self.sessionmaker = sessionmaker
        self.backend = backend
        self.journal = journal
        self.post = post
        self.registered = registered
        self.busy = busy
        self.static_routes = tuple(static_routes)
        self.static_contacts = static_contacts
        self.budget = budget
        # The built-in CRM on a SQLite file is read without a session (`InlinePartyLookup`).
        self.party_lookup = party_lookup
        self.last_offer: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.over_budget = 0

    # -- Router ------------------------------------------------------------------------------
    def route(self, request: RouteRequest, deliver: Deliver) -> None:
        internal = self._internal_call(request)
        if internal is not None:
            self._finish(request, None, internal, None, None, deliver, sync=True)
            return
        number = self.directory.number_for(request)
        if number is None:
            outbound = self._outbound(request)
            if outbound is not None:
                self._finish_outbound(request, outbound, deliver)
                return
            self._finish(request, None, self._decide(request, None, None, None), None, None, deliver, sync=True)
            return
        identity = caller_identity(request, trusted=request.trusted, region=number.default_region)
        # Spooled before the lookup: a crash while it runs still logs the call (SPEC C4).
        self.journal.lookup_started(self._routed_call(request, number, UNROUTED, identity, None))
        task = asyncio.get_running_loop().create_task(self._route_number(request, number, identity, deliver))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- an observer of leg offers, for R2's *evenly* ---------------------------------------------
    def leg_offered(self, event: LegOffered) -> None:
        if event.target.employee_id is not None:
            self.last_offer[event.target.employee_id] = event.at

    def call_started(self, event: object) -> None:
        return None

    call_offered = call_answered = call_failed = call_ended = call_transferred = call_started

    # -- where a blind transfer goes (the B2BUA's `transfer_target`, SPEC R5) --------------------
    def transfer_target(self, user: str, transferor: int | None) -> Target | None:
        """An employee's extension rings that employee; an outside number leaves as the transferor's own
        outbound call would (SPEC R5, R4): through the trunk of their outbound number, with it as caller ID.
        None when neither (a refused outside number too: the transferor hears the NOTIFY's failure)."""
        employee_id = self.directory.employee_for_extension(user)
        if employee_id is not None:
            return Target.employee(employee_id, user)
        snapshot = self.directory.snapshot
        if not snapshot.trunks or not is_outside_number(user):
            return None
        placing = snapshot.employees.get(transferor) if transferor is not None else None
        decision = route_outbound(OutboundInputs(
            user, placing or EmployeeSpec(0, None), snapshot.numbers_by_id, snapshot.trunks, snapshot.default_outbound_number_id,
        ))
        return decision.targets[0] if decision.targets else None

    # -- internals -------------------------------------------------------------------------------
    def _internal_call(self, request: RouteRequest) -> RouteDecision | None:
        """An employee's phone (or a trusted trunk) dialling an extension rings that employee."""
        if not (request.authenticated_user or request.trusted):
            return None
        employee_id = self.directory.employee_for_extension(request.request_user)
        if employee_id is None or request.request_user is None:
            return None
        step = RingStep((Target.employee(employee_id, request.request_user),), None, (RULE_EXTENSION,))
        return RouteDecision((step,), None, (RULE_EXTENSION,))

    def _outbound(self, request: RouteRequest) -> RouteDecision | None:
        """SPEC R4: an employee's phone dialling an outside number, once trunks exist (before that the
        configuration's static routes carry such calls)."""
        snapshot = self.directory.snapshot
        employee_id = self.directory.employee_for_extension(request.authenticated_user)
        dialled = request.request_user
        if employee_id is None or not snapshot.trunks or not is_outside_number(dialled):
            return None
        assert dialled is not None
        return route_outbound(OutboundInputs(
            dialled, snapshot.employees[employee_id], snapshot.numbers_by_id, snapshot.trunks, snapshot.default_outbound_number_id,
        ))

    def _finish_outbound(self, request: RouteRequest, decision: RouteDecision, deliver: Deliver) -> None:
        """Every outbound call is logged (R7), refused ones too; the CRM decides it in the journal (T5, T10:
        the placing employee is responsible)."""
        outside = next((target.number for target in decision.targets if target.number), None)
        # A refused call never left: the call log holds it, the CRM has nothing to record.
        number = self.directory.snapshot.numbers.get(decision.number) if decision.number and outside else None
        try:
            self.journal.routed(RoutedCall(
                call_id=request.call_id,
                direction=Direction.OUTBOUND.value,
                number_id=number.id if number is not None else None,
                number=decision.number or "",
                party_raw=outside or (request.request_user or ""),
                party_e164=outside,
                decision=decision,
                agent_id=decision.caller_employee_id,
            ))
        except Exception:
            log.exception("call %s: not journaled", request.call_id)
        deliver(decision, request.at)

    async def _route_number(
        self, request: RouteRequest, number: NumberSpec, identity: CallerIdentity, deliver: Deliver
    ) -> None:
        crm: call_hooks.CallDecision | None = None
        ring_plan: RingPlan | None = None
        unavailable: str | None = None
        try:
            async with asyncio.timeout(self.budget):
                crm = await self._lookup(request, number, identity)
            ring_plan = ring_responsible(crm.interaction, crm.plan, ring_timeout=number.responsible_ring_time)
        except TimeoutError:
            self.over_budget += 1
            unavailable = NO_CRM_BUDGET
        except (SQLAlchemyError, OSError) as error:
            log.warning("call %s: routing without CRM knowledge (%s)", request.call_id, type(error).__name__)
            unavailable = NO_CRM_DATABASE
        except Exception:
            log.exception("call %s: CRM lookup failed; routing to the queue group", request.call_id)
            unavailable = NO_CRM_DATABASE
        try:
            decision = self._decide(request, number, ring_plan, unavailable)
        except Exception:
            # A bug, not the caller's fault: they hear 500 now rather than waiting for the B2BUA's guard.
            log.exception("call %s: routing failed", request.call_id)
            decision = RouteDecision((), 500, (RULE_ERROR,))
        self._finish(request, number, decision, identity, crm, deliver, sync=False)

    async def _lookup(
        self, request: RouteRequest, number: NumberSpec, identity: CallerIdentity
    ) -> call_hooks.CallDecision:
        """The caller's CRM knowledge and the engine's plan: one query, the number's settings coming from
        the directory (as fresh as the last admin change)."""
        key, party_raw = call_hooks.call_key(request.call_id), _party_raw(identity)
        facts = self.directory.snapshot.facts.get(number.id)
        if self.party_lookup is not None and facts is not None:
            return await call_hooks.decide_call(
                None, key=key, number=number.e164, party_raw=party_raw, direction=Direction.INBOUND,
                facts=facts, find_party=self.party_lookup,
            )
        async with self.sessionmaker() as session:
            return await call_hooks.decide_call(
                session, key=key, number=number.e164, party_raw=party_raw, direction=Direction.INBOUND,
                backend=self.backend, facts=facts,
            )

    def _decide(
        self, request: RouteRequest, number: NumberSpec | None, ring_plan: RingPlan | None, unavailable: str | None
    ) -> RouteDecision:
        snapshot = self.directory.snapshot
        inputs = RoutingInputs(
            request=request,
            number=number,
            ring_plan=ring_plan,
            employees=snapshot.employees,
            groups=snapshot.groups,
            presence=Presence(registered=self.registered(), busy=self.busy()),
            last_offer=self.last_offer,
            static=self._static_table(request),
            crm_unavailable_reason=unavailable,
            trunks=snapshot.trunks,
        )
        return decide_route(inputs)

    def _static_table(self, request: RouteRequest) -> StaticTable:
        if not self.static_routes:
            return StaticTable()
        user = request.request_user
        contacts: Mapping[str, Sequence[str]] = {user: tuple(self.static_contacts(user))} if user else {}
        return StaticTable(self.static_routes, contacts)

    def _finish(
        self,
        request: RouteRequest,
        number: NumberSpec | None,
        decision: RouteDecision,
        identity: CallerIdentity | None,
        crm: call_hooks.CallDecision | None,
        deliver: Deliver,
        *,
        sync: bool,
    ) -> None:
        caller = self.directory.employee_for_extension(request.authenticated_user)
        if caller is not None:
            decision = replace(decision, caller_employee_id=caller)  # R3: busy while their call lasts
        if number is not None or not decision.forwards:
            self._journal(request, number, decision, identity, crm)
        else:
            self.journal.not_logged(request.call_id)
        if sync:
            deliver(decision, request.at)
        else:
            self.post(lambda now: deliver(decision, now))

    def _journal(
        self,
        request: RouteRequest,
        number: NumberSpec | None,
        decision: RouteDecision,
        identity: CallerIdentity | None,
        crm: call_hooks.CallDecision | None,
    ) -> None:
        """Calls to the numbers, and calls refused (an unknown number), go to the call log (R7); an
        extension dialled or a static route's pass-through are the PBX's own traffic, not the numbers'."""
        try:
            self.journal.routed(self._routed_call(request, number, decision, identity, crm))
        except Exception:
            log.exception("call %s: not journaled", request.call_id)

    def _routed_call(
        self,
        request: RouteRequest,
        number: NumberSpec | None,
        decision: RouteDecision,
        identity: CallerIdentity | None,
        crm: call_hooks.CallDecision | None,
    ) -> RoutedCall:
        return RoutedCall(
            call_id=request.call_id,
            direction=Direction.INBOUND.value,
            number_id=number.id if number is not None else None,
            number=number.e164 if number is not None else (request.request_user or request.to_user or ""),
            party_raw=identity.raw if identity is not None else (request.caller_user or request.caller_uri),
            party_e164=identity.e164 if identity is not None else None,
            decision=decision,
            crm=crm,
            identity_rule_ids=identity.rule_ids if identity is not None else (),
            identity_notes=(*((identity.reason,) if identity is not None and identity.reason else ()),
                            *self._trunk_note(request)),
        )


    def _trunk_note(self, request: RouteRequest) -> tuple[str, ...]:
        """Which trunk delivered the call (SPEC T1), for the call log."""
        trunk = self.directory.snapshot.trunks.get(request.trunk_id) if request.trunk_id is not None else None
        return (f"the call came in through trunk {trunk.name!r} ({trunk.kind.value})",) if trunk is not None else ()


def _party_raw(identity: CallerIdentity) -> str:
    """What the CRM normalises as the caller: the usable E.164, else the text as received (R6)."""
    return identity.e164 or identity.raw
