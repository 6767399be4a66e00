"""A live-call world in process: the demo seed in a real database, the directory, journal and router.

The SIP side is replaced by what the router asks of it (`post`, who is registered, who is busy): the
B2BUA's own handling of the decision is proven in tests/b2bua and, with real SIPp, in tests/integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.b2bua.events import CallAnswered, CallEnded, CallFailed, CallStarted, LegOffered
from gateway.calls.directory import RoutingDirectory
from gateway.calls.journal import CallJournal
from gateway.calls.router import LiveRouter
from gateway.crm_bridge.backend import CrmBackend
from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.store import BuiltinCrm
from gateway.crm_bridge.store.lookup import InlinePartyLookup
from gateway.demo import DEMO_NUMBER, seed_demo
from gateway.routing.decision import RouteDecision
from gateway.routing.request import RouteRequest
from gateway.storage.inline_reads import InlineReads
from gateway.storage.session import make_engine, make_sessionmaker

REALM = "gateway.test"


@dataclass
class LiveWorld:
    sessionmaker: async_sessionmaker[AsyncSession]
    directory: RoutingDirectory
    journal: CallJournal
    router: LiveRouter
    worker: OutboxWorker
    registered: set[str]
    busy: set[int] = field(default_factory=set)
    alice: int = 0
    bruno: int = 0
    engine: Any = None
    party_lookup: InlinePartyLookup | None = None

    def request(self, call_id: str, caller: str, dialled: str = "0184880000", **extra: Any) -> RouteRequest:
        values: dict[str, Any] = dict(
            call_id=call_id, request_user=dialled, to_user=dialled, caller_uri=f"sip:{caller}@trunk.test",
            caller_user=caller, caller_display=None, asserted=None, privacy=None,
            source=("udp", "127.0.0.1", 5090), trusted=True, authenticated_user=None, at=0.0,
        )
        values.update(extra)
        return RouteRequest(**values)

    async def route(self, request: RouteRequest) -> RouteDecision:
        """Start a call the way the B2BUA does and wait for the router's decision."""
        self.journal.call_started(CallStarted(request.call_id, request, 0.0))
        decided: asyncio.Future[RouteDecision] = asyncio.get_running_loop().create_future()
        self.router.route(request, lambda decision, now: decided.set_result(decision))
        return await asyncio.wait_for(decided, 5.0)

    def answer_and_hang_up(self, call_id: str, employee_id: int, decision: RouteDecision, talk: float = 3.0) -> None:
        target = next(t for t in decision.targets if t.employee_id == employee_id)
        self.journal.leg_offered(LegOffered(call_id, target, 0.0))
        self.journal.call_answered(CallAnswered(call_id, 0.0, 1.0, target))
        self.journal.call_ended(CallEnded(call_id, talk, "caller", talk))

    def give_up(self, call_id: str, status: int = 487) -> None:
        self.journal.call_failed(CallFailed(call_id, status, 0.0))

    async def settle(self) -> None:
        """Every journal job done and every outbox entry applied."""
        assert await self.journal.work.idle(10.0)
        for _ in range(5):
            await self.worker.run_once()

    async def close(self) -> None:
        """Stop every task the world started, then close the database."""
        self.journal.work.cancel()
        pending = [*self.journal.work._tasks, *self.router._tasks]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self.party_lookup is not None:
            self.party_lookup.close()
        await self.engine.dispose()

    async def rows(self, query: str, **params: Any) -> list[Any]:
        async with self.sessionmaker() as session:
            return list((await session.execute(sa.text(query), params)).all())


def make_world(
    url: str, *, backend: CrmBackend | None = None, router_sessionmaker: Callable[..., Any] | None = None,
    budget: float = 2.0,
) -> Callable[[], Any]:
    async def build() -> LiveWorld:
        engine = make_engine(url)
        sessionmaker = make_sessionmaker(engine)
        await seed_demo(sessionmaker, admin_token="gwt_test", realm=REALM)
        directory = RoutingDirectory(sessionmaker, REALM)
        await directory.reload()
        crm = backend or BuiltinCrm()
        worker = OutboxWorker(sessionmaker, BuiltinCrm())
        journal = CallJournal(sessionmaker, crm, employee_for_extension=directory.employee_for_extension)
        registered = {"1001", "1002"}
        world = LiveWorld(sessionmaker, directory, journal, None, worker, registered)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        # As the gateway wires it: the built-in CRM on a SQLite file is looked up without a session.
        reads = InlineReads.for_url(url) if backend is None and router_sessionmaker is None else None
        world.party_lookup = InlinePartyLookup(reads) if reads is not None else None
        world.router = LiveRouter(
            directory, router_sessionmaker or sessionmaker, crm, journal,
            post=lambda callback: loop.call_soon(callback, loop.time()),
            registered=lambda: world.registered,
            busy=lambda: frozenset(world.busy),
            budget=budget,
            party_lookup=world.party_lookup.find_party if world.party_lookup is not None else None,
        )
        world.alice, world.bruno = directory.snapshot.extensions["1001"], directory.snapshot.extensions["1002"]
        world.engine = engine
        return world

    return build


@pytest.fixture
async def live(db_url: str) -> AsyncIterator[LiveWorld]:
    world = await make_world(db_url)()
    yield world
    await world.close()


__all__ = ["DEMO_NUMBER", "LiveWorld", "make_world"]
