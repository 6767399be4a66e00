"""What `gateway run` hands the gateway so live calls use the database: the parts and how they meet."""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.calls.card_events import CardHub
from gateway.calls.directory import RoutingDirectory
from gateway.calls.journal import CallJournal
from gateway.calls.router import LiveRouter
from gateway.config import StaticRoute
from gateway.crm_bridge.backend import CrmBackend
from gateway.crm_bridge.store.lookup import InlinePartyLookup


class _Calls(Protocol):
    def busy_employees(self) -> frozenset[int]: ...


class SipSide(Protocol):
    """What the router needs of the running gateway (`gateway.app.Gateway`)."""

    b2bua: _Calls

    def run_in_sip(self, callback: Callable[[float], None]) -> None: ...

    def registered_users(self) -> Container[str]: ...

    def registered_contacts(self, user: str) -> list[str]: ...


@dataclass
class LiveCalls:
    """The routing directory, the call journal and the CRM they read and write.

    `lookups` are the sessions of the router's per-call CRM reads: a pool of their own, so a call's
    lookup never queues behind the journal's writes for a connection (the routing budget is short).
    """

    directory: RoutingDirectory
    journal: CallJournal
    lookups: async_sessionmaker[AsyncSession]
    backend: CrmBackend
    card: CardHub | None = None  # the call card's events (R8), an observer of the calls like the journal
    #: The router's lookup of each caller, without a session (the built-in CRM on a SQLite file).
    party_lookup: InlinePartyLookup | None = None

    def router(self, sip: SipSide, static_routes: Sequence[StaticRoute], budget: float) -> LiveRouter:
        """The router of `sip`'s B2BUA (the B2BUA itself may be built after this call)."""
        return LiveRouter(
            self.directory, self.lookups, self.backend, self.journal,
            post=sip.run_in_sip,
            registered=sip.registered_users,
            busy=lambda: sip.b2bua.busy_employees(),
            static_routes=static_routes,
            static_contacts=sip.registered_contacts,
            budget=budget,
            party_lookup=self.party_lookup.find_party if self.party_lookup is not None else None,
        )
