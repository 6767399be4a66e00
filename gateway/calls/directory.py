"""What routing needs at every call, held in memory: numbers, queue groups, employees, SIP secrets.

The B2BUA may not wait on the database, and a call must still ring the number's queue group when
the database is down (issue 10), so the routing tables are a snapshot: loaded at start, reloaded
when the admin API changes them (`request_reload`) and every `refresh_interval` seconds. Only the
caller's CRM knowledge is read per call (see `gateway.calls.router`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.calls.trunk_index import RegisteredSource, Resolve, TrunkIndex
from gateway.crm_bridge.call_hooks import NumberFacts, number_facts
from gateway.crm_bridge.interactions import crm_mode_settings
from gateway.routing.model import (
    EmployeeSpec,
    MemberSpec,
    NoAnswer,
    NoAnswerKind,
    NumberSpec,
    QueueGroupSpec,
    Strategy,
)
from gateway.routing.numbers import dialled_candidates_of
from gateway.routing.request import RouteRequest
from gateway.storage.models import Employee, Number, QueueGroup, Trunk
from gateway.storage.models.trunks import split_number_headers
from gateway.trunks.model import CallerIdFormat, NumberHeader, TrunkKind, TrunkSpec, TrunkTrust

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DirectorySnapshot:
    """The routing tables at one moment."""

    numbers: dict[str, NumberSpec] = field(default_factory=dict)  # by E.164
    regions: tuple[str, ...] = ()
    groups: dict[int, QueueGroupSpec] = field(default_factory=dict)
    employees: dict[int, EmployeeSpec] = field(default_factory=dict)
    extensions: dict[str, int] = field(default_factory=dict)  # extension → employee id
    credentials: dict[tuple[str, str], str] = field(default_factory=dict)  # (extension, algorithm) → HA1
    facts: dict[int, NumberFacts] = field(default_factory=dict)  # by number id: what a decision reads
    trunks: dict[int, TrunkSpec] = field(default_factory=dict)  # by trunk id
    default_outbound_number_id: int | None = None  # SPEC R4: for employees without their own

    @cached_property
    def numbers_by_id(self) -> dict[int, NumberSpec]:
        """The numbers by id (outbound calls and transfers name their number by id); built once per snapshot."""
        return {spec.id: spec for spec in self.numbers.values()}


def _number_spec(row: Number) -> NumberSpec:
    return NumberSpec(
        id=row.id,
        e164=row.e164,
        default_region=row.default_region,
        queue_group_id=row.queue_group_id,
        responsible_ring_time=float(row.responsible_ring_time_s),
        route_known_to_responsible=row.route_known_to_responsible,
        trunk_id=row.trunk_id,
    )


def trunk_spec(row: Trunk) -> TrunkSpec:
    """A stored trunk as the SIP side reads it (the stored strings become the domain's enums)."""
    return TrunkSpec(
        id=row.id, name=row.name, kind=TrunkKind(row.kind), host=row.host, port=row.port,
        transport=row.transport, trust=TrunkTrust(row.trust), username=row.username, secret=row.secret,
        number_headers=tuple(NumberHeader(header) for header in split_number_headers(row.number_headers)),
        caller_id_format=CallerIdFormat(row.caller_id_format), register_expires=row.register_expires,
        deny_patterns=tuple(row.deny_patterns), enabled=row.enabled,
    )


def _group_spec(row: QueueGroup) -> QueueGroupSpec:
    members = tuple(
        MemberSpec(employee_id=m.employee_id, position=m.position,
                   ring_time=float(m.ring_time_s) if m.ring_time_s is not None else None)
        for m in sorted(row.members, key=lambda m: (m.position, m.employee_id))
    )
    no_answer = NoAnswer(
        kind=NoAnswerKind(row.no_answer_action), group_id=row.no_answer_group_id,
        employee_id=row.no_answer_employee_id, number=row.no_answer_number,
    )
    return QueueGroupSpec(
        id=row.id, name=row.name, strategy=Strategy.from_stored(row.strategy), ring_time=float(row.ring_time_s),
        members=members, no_answer=no_answer,
    )


async def load_snapshot(session: AsyncSession, realm: str) -> DirectorySnapshot:
    """Read the routing tables; HA1s computed for another realm are left out (they cannot match)."""
    number_rows = list(await session.scalars(sa.select(Number)))
    numbers = {row.e164: _number_spec(row) for row in number_rows}
    groups = {row.id: _group_spec(row) for row in await session.scalars(sa.select(QueueGroup))}
    employees: dict[int, EmployeeSpec] = {}
    extensions: dict[str, int] = {}
    credentials: dict[tuple[str, str], str] = {}
    stale_realm = 0
    for row in await session.scalars(sa.select(Employee)):
        employees[row.id] = EmployeeSpec(id=row.id, extension=row.extension, active=row.active,
                                         outbound_number_id=row.outbound_number_id)
        if row.extension is None:
            continue
        extensions[row.extension] = row.id
        if not row.active or row.sip_ha1_md5 is None:
            continue
        if row.sip_realm != realm:
            stale_realm += 1
            continue
        credentials[(row.extension, "MD5")] = row.sip_ha1_md5
        if row.sip_ha1_sha256 is not None:
            credentials[(row.extension, "SHA-256")] = row.sip_ha1_sha256
    if stale_realm:
        log.warning("%d employees' SIP secrets were set for another realm than %r: set them again", stale_realm, realm)
    regions = tuple(sorted({spec.default_region for spec in numbers.values()}))
    crm = await crm_mode_settings(session)
    active = frozenset(spec.id for spec in employees.values() if spec.active)
    facts = {row.id: await number_facts(session, row, crm, active) for row in number_rows}
    trunks = {row.id: trunk_spec(row) for row in await session.scalars(sa.select(Trunk))}
    default_outbound = next((row.id for row in number_rows if row.default_outbound), None)
    return DirectorySnapshot(numbers, regions, groups, employees, extensions, credentials, facts, trunks,
                             default_outbound)


def _header_user(request: RouteRequest, header: NumberHeader) -> str | None:
    if header is NumberHeader.REQUEST_URI:
        return request.request_user
    if header is NumberHeader.TO:
        return request.to_user
    if header is NumberHeader.P_CALLED_PARTY_ID:
        return request.called_party_user
    return request.diversion_user


class RoutingDirectory:
    """The current snapshot, and the reloading of it."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], realm: str, *, refresh_interval: float = 30.0
    ) -> None:
        self.sessionmaker = sessionmaker
        self.realm = realm
        self.refresh_interval = refresh_interval
        self.snapshot = DirectorySnapshot()
        self.trunk_index = TrunkIndex({}, realm)
        # Set by the gateway once it registers to providers: INVITEs from their registrars are trusted.
        self.registered_source: RegisteredSource = lambda _host, _port: None
        self.resolve: Resolve | None = None  # the SIP side's resolver, once it runs
        self._wake = asyncio.Event()
        self.loaded = False
        # Called with each snapshot a reload produced (e.g. the trunks' registrations follow the trunks).
        self.on_reload: list[Callable[[DirectorySnapshot], None]] = []

    async def reload(self) -> None:
        """Read the tables again; on a database error the previous snapshot stays."""
        async with self.sessionmaker() as session:
            snapshot = await load_snapshot(session, self.realm)
        index = TrunkIndex(snapshot.trunks, self.realm, lambda host, port: self.registered_source(host, port))
        await index.resolve_names(self.resolve)
        self.snapshot, self.trunk_index = snapshot, index
        self.loaded = True
        for listener in self.on_reload:
            try:
                listener(self.snapshot)
            except Exception:
                # A listener's bug must not make the reload look failed: the snapshot is in place.
                log.exception("routing directory: a reload listener failed")

    def request_reload(self, topic: str = "") -> None:
        """Something routing reads changed: reload soon, in the background."""
        self._wake.set()

    async def reload_now(self, topic: str = "") -> None:
        """The admin API changed something routing reads: reload before its answer goes out, so the
        next call already uses the change. A database error leaves the reload to the background loop."""
        try:
            await self.reload()
        except (SQLAlchemyError, OSError) as error:
            log.warning("routing directory not reloaded after a change to %s (%s); retrying in the background",
                        topic or "the configuration", type(error).__name__)
            self.request_reload(topic)

    async def run(self, stop: asyncio.Event) -> None:
        """Reload on request and every `refresh_interval` seconds until `stop`."""
        while not stop.is_set():
            waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
            await asyncio.wait(waiters, timeout=self.refresh_interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if stop.is_set():
                return
            self._wake.clear()
            try:
                await self.reload()
            except (SQLAlchemyError, OSError) as error:
                log.warning("routing directory not reloaded (%s); keeping the last one", type(error).__name__)

    # -- what the SIP side asks, synchronously ----------------------------------------------
    def ha1(self, username: str, algorithm: str) -> str | None:
        """The stored HA1 of an employee's phone, else of a PBX trunk's login (the digest gate's lookup)."""
        found = self.snapshot.credentials.get((username, algorithm))
        return found if found is not None else self.trunk_index.ha1(username, algorithm)

    def number_for(self, request: RouteRequest) -> NumberSpec | None:
        """The gateway number the call dialled, any written form: read from the headers its trunk names,
        in the trunk's order (SPEC T1), else the Request-URI user, then the To user."""
        snapshot = self.snapshot
        trunk = snapshot.trunks.get(request.trunk_id) if request.trunk_id is not None else None
        users = ([_header_user(request, header) for header in trunk.number_headers] if trunk is not None
                 else [request.request_user, request.to_user])
        for candidate in dialled_candidates_of(users, snapshot.regions):
            found = snapshot.numbers.get(candidate)
            if found is not None:
                return found
        return None

    def number_by_id(self, number_id: int) -> NumberSpec | None:
        return self.snapshot.numbers_by_id.get(number_id)

    def employee_for_extension(self, extension: str | None) -> int | None:
        return self.snapshot.extensions.get(extension) if extension else None

    def number_facts(self, number_id: int | None) -> NumberFacts | None:
        """What a CRM decision reads about the number `number_id` (None: not one of the numbers now)."""
        return self.snapshot.facts.get(number_id) if number_id is not None else None
