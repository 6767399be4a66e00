"""Composition root: config → storage → CRM → registrar → routing → B2BUA → transports → admin API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import signal
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway import gc_tuning, metrics
from gateway.admin.api import crm_routers, install
from gateway.admin.app import create_admin_app
from gateway.admin.routes.mail import set_mail_config
from gateway.b2bua.controller import B2bua, extension_target
from gateway.b2bua.observer import CallObserver, MetricsObserver, ObserverSet
from gateway.b2bua.static_router import StaticRouter
from gateway.calls.card_events import CardHub
from gateway.calls.card_facts import DatabaseCardReader
from gateway.calls.directory import DirectorySnapshot, RoutingDirectory
from gateway.calls.journal import CallJournal
from gateway.calls.journal_forward import ForwardedWork
from gateway.calls.live import LiveCalls
from gateway.calls.router import LiveRouter
from gateway.calls.spool import SpoolCollector, open_spool
from gateway.calls.trunk_index import CurrentTrunks
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.outbox_process import OutboxProcess
from gateway.crm_bridge.store import BuiltinCrm
from gateway.crm_bridge.store.lookup import InlinePartyLookup
from gateway.demo import first_admin_id, seed_demo_if_new
from gateway.guard.metrics import GuardCollector
from gateway.guard.policy import SourceGuard
from gateway.guard.wiring import GuardWiring
from gateway.registrar import BindingStore, Registrar
from gateway.registrar.gate import DigestGate
from gateway.registrar.persistence import BindingPersistence, JournaledBindingStore
from gateway.routing.request import Router
from gateway.sip.endpoint import SipEndpoint
from gateway.storage.inline_reads import InlineReads
from gateway.storage.registrations import SqlBindingBackend
from gateway.storage.session import (
    connection_problem,
    make_call_path_engine,
    make_engine,
    make_sessionmaker,
    migrate,
)
from gateway.transport.resolver import SipResolver
from gateway.transport.runtime import SipRuntime
from gateway.transport.tcp import TcpTransport
from gateway.transport.udp import UdpTransport
from gateway.trunks.registrations import TrunkRegistrations
from mail_bridge.demo import announcement, seed_demo_mailbox
from mail_bridge.service import run_mail_bridge

log = logging.getLogger("gateway")
WRITER_START_WAIT = 30.0


def _no_ha1(username: str, algorithm: str) -> str | None:
    return None


class Gateway:
    """One running gateway: SIP transports around one endpoint, the B2BUA, and the admin API."""

    def __init__(
        self,
        config: GatewayConfig,
        observers: Iterable[CallObserver] = (),
        admin_routers: Iterable[APIRouter] = (),
        admin_state: Mapping[str, Any] | None = None,
        admin_setup: Callable[[FastAPI], None] | None = None,
        bindings: BindingStore | None = None,
        live: LiveCalls | None = None,
    ) -> None:
        """`observers` hear about calls (CRM call hooks); `admin_routers`, `admin_state` and
        `admin_setup` (called with the built app, e.g. `gateway.admin.api.install`) extend the admin API;
        `bindings` is the registrar's store (a persistent one, filled before SIP starts); `live` routes
        calls by the numbers and queue groups of the database and journals them (without it: the static
        routes of the configuration only)."""
        self.config = config
        self.admin_setup = admin_setup
        self.admin_routers = list(admin_routers)
        self.admin_state = dict(admin_state or {})
        self.live = live
        sip = config.sip
        self.endpoint = SipEndpoint(
            sent_by={addr.transport: (addr.host, addr.port) for addr in reversed(sip.listen)},
            user_agent="voice-gateway",
            max_stream_message=sip.tcp.max_message_bytes,
        )
        self.tcp_stats: dict[str, int] = {}  # filled by the TCP transport, read by /metrics
        passwords = {user.username: user.password for user in sip.users}
        ha1 = live.directory.ha1 if live is not None else _no_ha1
        # Trunks are trusted by address: never rate-limited nor banned (see gateway.guard.policy).
        self.guard = SourceGuard(config.security, exempt=self._trunk_address)
        guard_wiring = GuardWiring(self.guard)
        self.endpoint.screen = guard_wiring.screen
        self._ignores = guard_wiring.ignores
        self.bindings = bindings if bindings is not None else BindingStore()
        self.registrar = Registrar(
            self.bindings,
            DigestGate(sip.nonce_secret, sip.realm, sip.nonce_max_age, passwords, algorithms=sip.digest_algorithms,
                       ha1=ha1, node_id=sip.node_id, on_failure=guard_wiring.auth_failed),
            min_expires=sip.min_expires,
            max_expires=sip.max_expires,
            default_expires=sip.default_expires,
            max_contacts_per_aor=sip.max_contacts_per_aor,
        )
        self.call_stats = metrics.CallStats()
        self.observers = ObserverSet([MetricsObserver(self.call_stats), *observers])
        self.live_router: LiveRouter | None = None
        router: Router = StaticRouter(sip.static_routes, self.registrar.store)
        if live is not None:
            self.live_router = router = live.router(self, sip.static_routes, sip.routing_budget_ms / 1000)
            self.observers.add(live.journal)
            self.observers.add(self.live_router)
            if live.card is not None:
                self.observers.add(live.card)
        self.b2bua = B2bua(
            self.endpoint,  # type: ignore[arg-type]
            self.observers,
            router,
            self.registrar,
            DigestGate(sip.nonce_secret, sip.realm, sip.nonce_max_age, passwords, algorithms=sip.digest_algorithms,
                       ha1=ha1, node_id=sip.node_id, on_failure=guard_wiring.auth_failed),
            self._trusted,
            connected=self._connected,
            nat_contacts=sip.nat_contacts,
            max_call_seconds=sip.max_call_seconds,
            trunks=CurrentTrunks(lambda: live.directory.trunk_index) if live is not None else None,
            transfer_target=self.live_router.transfer_target if self.live_router is not None else extension_target,
            transfer_ring_time=float(sip.transfer_ring_time_s),
        )
        self.runtime: SipRuntime | None = None
        self.transports: list[UdpTransport | TcpTransport] = []
        self.listening = False
        self.metrics_registry = metrics.gateway_registry(
            self.endpoint.stats, lambda: len(self.bindings), self.call_stats, lambda: self.listening
        )
        self.metrics_registry.register(GuardCollector(self.guard, self._sip_now))
        self.metrics_registry.register(metrics.TcpCollector(self.tcp_stats))
        if live is not None:
            self.metrics_registry.register(metrics.JournalCollector(live.journal))
            if live.journal.spool is not None:
                self.metrics_registry.register(SpoolCollector(live.journal.spool, lambda: live.journal.spilled))
        # Outbound registrations to providers follow the directory's trunks (synced once SIP listens).
        self.directory = live.directory if live is not None else None
        self.trunk_registrations = TrunkRegistrations(self.b2bua, self.endpoint.sent_by, clock=self._sip_now)
        self.metrics_registry.register(metrics.TrunkRegistrationCollector(self.trunk_registrations.metrics))
        if self.directory is not None:
            self.directory.on_reload.append(self._trunks_changed)
            # INVITEs from a provider's registrar we are registered with are that provider's calls (T1).
            self.directory.registered_source = self.trunk_registrations.trusted_source

    def run_in_sip(self, callback: Callable[[float], None]) -> None:
        """Run `callback(now)` inside the SIP loop (an async lookup's answer re-entering the B2BUA)."""
        if self.runtime is not None:
            self.runtime.run_in_sip(callback)

    def registered_users(self) -> frozenset[str]:
        """The extensions with a phone registered now."""
        return self.bindings.live_users(self._sip_now())

    def registered_contacts(self, user: str) -> list[str]:
        return self.bindings.contacts(user, self._sip_now())

    def _sip_now(self) -> float:
        return self.runtime.loop.time() if self.runtime is not None else asyncio.get_event_loop().time()

    def _connected(self, peer: tuple[str, str, int]) -> bool:
        return self.runtime is not None and self.runtime.is_connected(peer)

    def _trunk_address(self, host: str) -> bool:
        """Whether `host` is a trunk's address: the configuration's, a database trunk trusted by source, or
        a provider's registrar we register to (a provider delivering many calls is no flood)."""
        if any(t.host == host for t in self.config.sip.trunks):
            return True
        if self.trunk_registrations.registrar_host(host):
            return True
        return self.live is not None and self.live.directory.trunk_index.by_source(host, 0) is not None

    def _trusted(self, host: str, port: int) -> bool:
        return any(t.host == host and (t.port is None or t.port == port) for t in self.config.sip.trunks)

    async def start_sip(self) -> None:
        """Bind every SIP listen address; the Contact and Via use the bound ports."""
        loop = asyncio.get_running_loop()
        resolver = SipResolver(self.config.sip.dns_servers, self.config.sip.dns_timeout)
        self.runtime = SipRuntime(self.endpoint, self.b2bua.handle, loop, resolver)
        if self.live is not None:
            # Trunks trusted by a host name are looked up as SIP looks names up (dns_servers).
            self.live.directory.resolve = resolver.resolve
            self.live.directory.request_reload("trunk addresses")
        self.runtime.ignores = self._ignores
        for address in self.config.sip.listen:
            try:
                if address.transport == "udp":
                    transport: UdpTransport | TcpTransport = await UdpTransport.bind(
                        self.runtime, address.host, address.port
                    )
                else:
                    transport = await TcpTransport.bind(
                        self.runtime, address.host, address.port, limits=self.config.sip.tcp, stats=self.tcp_stats
                    )
            except OSError as error:
                raise OSError(error.errno, f"cannot listen on sip {address}: {error.strerror}") from error
            self.transports.append(transport)
            host, port = transport.address
            self.endpoint.sent_by[address.transport] = (host, port)
            self.b2bua.set_contact(address.transport, host, port)
            log.info("SIP listening on %s:%s:%d", address.transport, host, port)
        self.listening = True
        if self.directory is not None:
            self._trunks_changed(self.directory.snapshot)  # re-registration after a restart: register at start

    def _trunks_changed(self, snapshot: DirectorySnapshot) -> None:
        if self.listening:
            trunks = snapshot.trunks
            self.run_in_sip(lambda now: self.trunk_registrations.sync(trunks, now))

    async def unregister_trunks(self, grace: float = 2.0) -> None:
        """Best effort before SIP stops: un-REGISTER at every provider, waiting up to `grace` seconds
        for their answers (a challenged un-REGISTER needs a second round trip)."""
        if self.runtime is None or not self.listening:
            return
        done = asyncio.Event()
        self.run_in_sip(lambda now: self.trunk_registrations.stop_all(now, on_done=done.set))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await done.wait()

    def stop_sip(self) -> None:
        for transport in self.transports:
            transport.close()
        if self.runtime is not None:
            self.runtime.close()
        self.listening = False

    def admin_socket(self) -> socket.socket:
        """The admin API's listening socket, bound here so a busy port is a clear error."""
        admin = self.config.admin
        family = socket.AF_INET6 if ":" in admin.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((admin.host, admin.port))
        except OSError as error:
            sock.close()
            raise OSError(error.errno, f"cannot listen on admin {admin.host}:{admin.port}: {error.strerror}") from error
        sock.listen(128)
        sock.setblocking(False)
        return sock

    def admin_server(self) -> uvicorn.Server:
        """The uvicorn server of the admin API, to be served inside this loop."""
        admin = self.config.admin
        state = {"gateway": self, "metrics_registry": self.metrics_registry, "source_guard": self.guard,
                 "sip_clock": self._sip_now, "trunk_registrations": self.trunk_registrations, **self.admin_state}
        app = create_admin_app(sip_ready=lambda: self.listening, routers=self.admin_routers, state=state)
        if self.admin_setup is not None:
            self.admin_setup(app)
        config = uvicorn.Config(app, host=admin.host, port=admin.port, log_level="warning", access_log=False)
        return _InLoopServer(config)


class _InLoopServer(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Launcher:
    """How the operator started the gateway, so the hints printed at start-up can be pasted as they are."""

    command: str = "gateway"  # the CLI as the operator runs it, e.g. ".venv/bin/gateway"
    config_path: str | None = None


async def open_crm(
    config: GatewayConfig, launcher: Launcher = Launcher()
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """Migrate the database to the newest schema, seed the demo into a new one when asked.

    A database that cannot be opened (server down, wrong password, missing directory) is a
    `ConfigError` naming `[database] url` and the host/port or file, never the password.
    """
    url = config.database.url
    try:
        await migrate(url)
        seeded = await seed_demo_if_new(url, realm=config.sip.realm) if config.database.seed_demo else None
    except (OperationalError, InterfaceError, OSError) as error:
        raise ConfigError(f"[database] url: {connection_problem(url, error)}") from None
    if seeded is not None:
        # Printed, not logged: the one-time admin token must not end up in log files.
        print(seeded.announcement(launcher.command, launcher.config_path), flush=True)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    if seeded is not None and seeded.created:
        mailbox_note = announcement(await seed_demo_mailbox(sessionmaker))
        if mailbox_note:
            print(mailbox_note, flush=True)
    if seeded is None:
        async with sessionmaker() as session:
            nobody = await first_admin_id(session) is None
        if nobody:
            # Every admin API route needs a token, and without an administrator nobody can issue one.
            config_option = f" --config {shlex.quote(launcher.config_path)}" if launcher.config_path else ""
            print(f"no administrator yet: {launcher.command} admin create{config_option} --name NAME "
                  "creates one and prints their admin API token", flush=True)
    return engine, sessionmaker


def crm_gateway(
    config: GatewayConfig,
    sessionmaker: async_sessionmaker[AsyncSession],
    bindings: BindingStore | None = None,
    live: LiveCalls | None = None,
) -> Gateway:
    """The gateway with the admin API's CRM resources served over `sessionmaker`; with `live`, calls
    are routed by the database's numbers and queue groups, and admin API changes reload them."""
    state: dict[str, Any] = {"sip_realm": config.sip.realm}
    if live is not None:
        state["on_config_change"] = live.directory.reload_now
        state["card_hub"] = live.card
    return Gateway(
        config,
        admin_routers=crm_routers(),
        admin_state=state,
        admin_setup=lambda app: _install_admin(app, sessionmaker, config),
        bindings=bindings,
        live=live,
    )


def _install_admin(app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession], config: GatewayConfig) -> None:
    install(app, sessionmaker)
    set_mail_config(app, config.mail)  # mailboxes without their own SMTP relay send through [mail]'s


async def open_live_calls(
    config: GatewayConfig, sessionmaker: async_sessionmaker[AsyncSession], lookups: async_sessionmaker[AsyncSession],
    wake_outbox: Callable[[], None], writer: OutboxProcess | None = None,
    directory_sessions: async_sessionmaker[AsyncSession] | None = None,
) -> LiveCalls:
    """The routing directory (loaded now, before SIP listens) and the call journal; `lookups` is the
    router's own pool for per-call CRM reads; with a `writer` process the journal's writes are made there;
    `directory_sessions`: the directory's reloads (default `sessionmaker`)."""
    backend = BuiltinCrm()
    directory = RoutingDirectory(directory_sessions or sessionmaker, config.sip.realm)
    await directory.reload()
    spool, left = open_spool(config.journal, config.database.url)
    journal = CallJournal(
        sessionmaker, backend, wake_outbox=wake_outbox, employee_for_extension=directory.employee_for_extension,
        number_facts=directory.number_facts,
        spool=spool, memory_calls=config.journal.memory_calls,
        forward=ForwardedWork(writer) if writer is not None else None,
    )
    if writer is not None:
        # The writer process decides calls on the numbers' settings too: it reloads when they change.
        directory.on_reload.append(lambda _snapshot: writer.send(b"r\n"))
    if left:
        # Before SIP listens: what the last run could not write (a crash, an outage) goes first (C4).
        log.info("call spool: replaying %d calls the last run left unwritten", journal.replay(left))
    card = CardHub(DatabaseCardReader(lookups, backend), routed_call=journal.routed_call,
                   employee_for_extension=directory.employee_for_extension, wake_outbox=wake_outbox)
    reads = InlineReads.for_url(config.database.url)
    return LiveCalls(directory, journal, lookups, backend, card,
                     party_lookup=InlinePartyLookup(reads) if reads is not None else None)


async def serve(config: GatewayConfig, gateway: Gateway | None = None, launcher: Launcher = Launcher()) -> None:
    """Run until SIGINT/SIGTERM: SIP first (so /healthz tells the truth), then the admin API.

    Without a prepared `gateway`, the database is migrated, the CRM admin API is mounted and the
    outbox worker applies pending CRM writes (SPEC C4) for as long as the gateway runs; registrations
    saved by the last run are restored before SIP listens and are saved behind the registrar.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    engine: AsyncEngine | None = None
    lookup_engine: AsyncEngine | None = None
    journal_engine: AsyncEngine | None = None
    background: list[asyncio.Task[None]] = []
    live: LiveCalls | None = None
    writer: OutboxProcess | None = None
    if gateway is None:
        engine, sessionmaker = await open_crm(config, launcher)
        bindings = JournaledBindingStore()
        persistence = BindingPersistence(bindings, SqlBindingBackend(sessionmaker), mono=loop.time)
        await persistence.load()
        worker: OutboxWorker | OutboxProcess = (
            OutboxProcess(config.database.url, log_level=config.log_level, realm=config.sip.realm) if config.database.outbox_process
            else OutboxWorker(sessionmaker, BuiltinCrm()))
        writer = worker if isinstance(worker, OutboxProcess) else None
        lookup_engine = make_engine(config.database.url, inline_sqlite=True)
        journal_engine = make_call_path_engine(config.database.url)
        live = await open_live_calls(config, make_sessionmaker(journal_engine), make_sessionmaker(lookup_engine),
                                     worker.wake, writer,
                                     # A reload reads every number, group and employee: its statements run
                                     # on a thread, never on the SIP loop (inline they stalled calls ~100 ms).
                                     directory_sessions=sessionmaker)
        gateway = crm_gateway(config, sessionmaker, bindings, live)
        background += [
            loop.create_task(worker.run_forever(stop=stop)),
            loop.create_task(live.directory.run(stop)),
            loop.create_task(run_mail_bridge(sessionmaker, config, stop, on_saved=worker.wake)),
            # Last in the list: its final flush runs after SIP stopped changing bindings.
            loop.create_task(persistence.run(stop)),
        ]
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = gateway.admin_server()
    admin_task = loop.create_task(server.serve(sockets=[gateway.admin_socket()]))
    try:
        if writer is not None:
            await _writer_ready(writer)
        await gateway.start_sip()
        gc_tuning.tune_after_startup(stop)  # GC: start-up frozen, full collections only when needed
        log.info("admin API on http://%s:%d", config.admin.host, config.admin.port)
        stopped = loop.create_task(stop.wait())
        await asyncio.wait({admin_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if admin_task.done() and not stop.is_set():
            raise RuntimeError(f"admin API on {config.admin.host}:{config.admin.port} stopped (port in use?)")
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await gateway.unregister_trunks()
        if live is not None and live.card is not None:
            live.card.close()  # open card streams would keep the admin API from stopping
        gateway.stop_sip()
        stop.set()
        with contextlib.suppress(Exception):
            await admin_task
        if live is not None:
            # Calls that ended just now still have their call-log and CRM writes to make.
            await live.journal.pending.idle(5.0)
            live.journal.pending.cancel()
            if live.journal.spool is not None:
                live.journal.spool.close()  # what is left unwritten is replayed at the next start
            if live.party_lookup is not None:
                live.party_lookup.close()
        for task in background:
            with contextlib.suppress(Exception):
                await task
        if engine is not None:
            await engine.dispose()
        for call_path in (lookup_engine, journal_engine):
            if call_path is not None:
                await call_path.dispose()
    log.info("gateway stopped")


async def _writer_ready(writer: OutboxProcess) -> None:
    """Before SIP listens: the writer process takes the first call's writes as it starts (it imports for
    a second or two). One that does not come up delays nothing longer than WRITER_START_WAIT: calls are
    safe in the spool and sent to it once it runs."""
    try:
        await asyncio.wait_for(writer.ready.wait(), WRITER_START_WAIT)
    except TimeoutError:
        log.warning("the writer process is not ready after %.0f s; SIP starts anyway (calls are spooled)",
                    WRITER_START_WAIT)


def run_from_file(path: str, command: str = "gateway") -> int:
    """`gateway run --config FILE`: 0 after a clean stop, 2 for a bad configuration (including a
    database that cannot be opened), 1 otherwise. `command` is how the CLI was invoked (for hints)."""
    try:
        config = load_config(path)
    except ConfigError as error:
        print(f"gateway: configuration error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic narrates every migration step at INFO; only its warnings matter to an operator.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(config.log_level)))
    try:
        _run(serve(config, launcher=Launcher(command, path)))
    except ConfigError as error:
        print(f"gateway: configuration error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"gateway: cannot start: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 1
    return 0


def _run(main: Any) -> None:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
