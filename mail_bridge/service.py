"""The mail bridge's loop: one task per mailbox (sync, then IDLE with a periodic poll as fallback), and a
supervisor that follows the mailboxes table.

A mailbox whose server cannot be reached or refuses the login is marked ``failing`` with the reason
(``GET /mailboxes`` shows it) and retried with exponential back-off; it never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aioimaplib
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import GatewayConfig, MailConfig
from gateway.crm_bridge.backend import CrmBackend
from gateway.storage.models import Mailbox, MailboxState
from mail_bridge.imap import ImapAccount, ImapError, ImapSession
from mail_bridge.sync import sync_folder

log = logging.getLogger(__name__)

#: What a failed connection can raise besides ImapError: the network, timeouts, the client library.
CONNECTION_ERRORS = (ImapError, OSError, TimeoutError, aioimaplib.Abort, aioimaplib.CommandTimeout)


@dataclass(frozen=True)
class Timers:
    """The bridge's timers in seconds (from ``[mail]``)."""

    poll: float = 60.0
    idle: float = 600.0
    retry_max: float = 300.0
    timeout: float = 30.0

    @classmethod
    def from_config(cls, config: MailConfig) -> Timers:
        return cls(config.poll_seconds, config.idle_seconds, config.retry_max_seconds, config.timeout_seconds)

    def backoff(self, failures: int) -> float:
        """1, 2, 4 ... seconds after the 1st, 2nd, 3rd failure, at most ``retry_max``."""
        return float(min(self.retry_max, 2 ** min(max(failures - 1, 0), 20)))


def account_of(mailbox: Mailbox) -> ImapAccount:
    return ImapAccount(mailbox.imap_host, mailbox.imap_port, mailbox.tls_mode, mailbox.login, mailbox.secret)


def fingerprint(mailbox: Mailbox) -> str:
    """Changes when anything the running connection depends on changes (the secret only as a hash)."""
    parts = [mailbox.imap_host, str(mailbox.imap_port), mailbox.tls_mode, mailbox.login, mailbox.secret,
             ",".join(mailbox.folders or [])]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class MailboxRunner:
    """Keeps one mailbox in sync until stopped."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], mailbox_id: int, timers: Timers,
        *, backend: CrmBackend | None = None, on_saved: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.mailbox_id = mailbox_id
        self.timers = timers
        self.backend = backend
        self.on_saved = on_saved

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._connected(stop)
            except asyncio.CancelledError:
                raise
            except CONNECTION_ERRORS as exc:
                await _wait(stop, await self._mark_failing(str(exc) or type(exc).__name__))
            except Exception as exc:  # a bug must not end this mailbox's sync for good, nor the others'
                log.exception("mailbox %s: sync failed", self.mailbox_id)
                await _wait(stop, await self._mark_failing(f"internal error: {type(exc).__name__}"))

    async def _connected(self, stop: asyncio.Event) -> None:
        mailbox = await self._load()
        imap = await ImapSession.open(account_of(mailbox), self.timers.timeout)
        try:
            while not stop.is_set():
                mailbox = await self._load()
                for folder in mailbox.folders or ["INBOX"]:
                    await sync_folder(
                        self.sessions, imap, self.mailbox_id, folder, first_sync_days=mailbox.first_sync_days,
                        backend=self.backend, on_saved=self.on_saved,
                    )
                await self._mark_ok()
                if imap.can_idle:
                    await imap.select((mailbox.folders or ["INBOX"])[0])
                    await imap.idle(min(self.timers.poll, self.timers.idle), stop)
                else:
                    await _wait(stop, self.timers.poll)
        finally:
            await imap.close()

    async def _load(self) -> Mailbox:
        async with self.sessions() as session:
            mailbox = await session.get(Mailbox, self.mailbox_id)
            if mailbox is None:
                raise ImapError(f"mailbox {self.mailbox_id} no longer exists")
            session.expunge(mailbox)
            return mailbox

    async def _mark_ok(self) -> None:
        async with self.sessions() as session, session.begin():
            mailbox = await session.get(Mailbox, self.mailbox_id)
            if mailbox is not None:
                mailbox.state, mailbox.last_error, mailbox.failures = MailboxState.OK.value, None, 0
                mailbox.next_attempt_at, mailbox.last_sync_at = None, datetime.now(UTC)

    async def _mark_failing(self, reason: str) -> float:
        """Record the failure; the seconds to wait before the next attempt."""
        async with self.sessions() as session, session.begin():
            mailbox = await session.get(Mailbox, self.mailbox_id)
            if mailbox is None:
                return self.timers.retry_max
            mailbox.failures += 1
            delay = self.timers.backoff(mailbox.failures)
            mailbox.state, mailbox.last_error = MailboxState.FAILING.value, reason[:1000]
            mailbox.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
        log.warning("mailbox %s failing (%s); next attempt in %.0f s", self.mailbox_id, reason, delay)
        return delay


class MailBridge:
    """Runs one :class:`MailboxRunner` per mailbox and follows additions, changes and removals."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], timers: Timers,
        *, backend: CrmBackend | None = None, on_saved: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.timers = timers
        self.backend = backend
        self.on_saved = on_saved
        self._running: dict[int, tuple[str, asyncio.Event, asyncio.Task[None]]] = {}

    async def reconcile(self) -> None:
        """Start runners for new mailboxes, restart changed ones, stop removed ones."""
        async with self.sessions() as session:
            wanted = {m.id: fingerprint(m) for m in (await session.scalars(sa.select(Mailbox))).all()}
        for mailbox_id, (print_, _, _) in list(self._running.items()):
            if wanted.get(mailbox_id) != print_:
                await self._stop(mailbox_id)
        for mailbox_id, print_ in wanted.items():
            if mailbox_id not in self._running:
                stop = asyncio.Event()
                runner = MailboxRunner(self.sessions, mailbox_id, self.timers, backend=self.backend,
                                       on_saved=self.on_saved)
                task = asyncio.create_task(runner.run(stop), name=f"mailbox-{mailbox_id}")
                self._running[mailbox_id] = (print_, stop, task)

    async def _stop(self, mailbox_id: int) -> None:
        _, stop, task = self._running.pop(mailbox_id)
        stop.set()
        try:
            await asyncio.wait_for(task, self.timers.timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.reconcile()
                except Exception:  # the database is down: keep the runners, try again later
                    log.exception("mail bridge: cannot read the mailboxes")
                await _wait(stop, self.timers.poll)
        finally:
            for mailbox_id in list(self._running):
                await self._stop(mailbox_id)


async def run_mail_bridge(
    sessionmaker: async_sessionmaker[AsyncSession], config: GatewayConfig | MailConfig, stop: asyncio.Event,
    *, backend: CrmBackend | None = None, on_saved: Callable[[], None] | None = None,
) -> None:
    """Sync every mailbox until ``stop`` is set (``gateway run`` calls this; pass the outbox's ``wake``).

    Does nothing when ``[mail] enabled = false``.
    """
    mail = config.mail if isinstance(config, GatewayConfig) else config
    if not mail.enabled:
        return
    await MailBridge(sessionmaker, Timers.from_config(mail), backend=backend, on_saved=on_saved).run(stop)
