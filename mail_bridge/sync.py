"""Sync one IMAP folder into the CRM: UID/UIDVALIDITY tracking, so nothing is missed or repeated.

The folder's state (UIDVALIDITY, highest UID saved) is committed in the same transaction as each
message, so a crash, a dropped connection or a server restart resumes after the last saved message.
A changed UIDVALIDITY (RFC 3501 2.3.1.1: every UID is void) starts the folder over from the first-sync
window; messages already stored are recognised by their key (Message-ID or synthetic), never saved twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.crm_bridge.backend import CrmBackend
from gateway.storage.models import Mailbox, MailFolderState
from mail_bridge.imap import ImapSession
from mail_bridge.linking import save_message

log = logging.getLogger(__name__)

#: Messages fetched per IMAP round trip (each is held in memory until stored).
FETCH_BATCH = 25


async def _advance(session: AsyncSession, mailbox_id: int, folder: str, uidvalidity: int, uid: int) -> None:
    state = await session.get(MailFolderState, (mailbox_id, folder))
    now = datetime.now(UTC)
    if state is None or state.uidvalidity != uidvalidity:
        if state is not None:
            await session.delete(state)
            await session.flush()
        session.add(MailFolderState(mailbox_id=mailbox_id, folder=folder, uidvalidity=uidvalidity, last_uid=uid,
                                    updated_at=now))
    elif uid > state.last_uid:
        state.last_uid = uid
        state.updated_at = now


async def folder_state(sessions: async_sessionmaker[AsyncSession], mailbox_id: int, folder: str) -> MailFolderState | None:
    """Where the sync of ``folder`` stands, if it ever ran."""
    async with sessions() as session:
        return await session.get(MailFolderState, (mailbox_id, folder))


async def _save_one(
    sessions: async_sessionmaker[AsyncSession], mailbox_id: int, folder: str, uidvalidity: int, uid: int,
    raw: bytes, backend: CrmBackend | None,
) -> bool:
    """Store and link one message with the folder's new state; True when it was new."""
    for attempt in (1, 2):
        try:
            async with sessions() as session, session.begin():
                mailbox = await session.get(Mailbox, mailbox_id)
                if mailbox is None:
                    raise LookupError(f"mailbox {mailbox_id} was removed during its sync")
                saved = await save_message(session, mailbox, raw, folder=folder, uid=uid, backend=backend)
                await _advance(session, mailbox_id, folder, uidvalidity, uid)
                return saved.new
        except IntegrityError:
            # The same message was stored meanwhile from another folder or mailbox: the retry finds it.
            if attempt == 2:
                raise
    return False


async def sync_folder(
    sessions: async_sessionmaker[AsyncSession],
    imap: ImapSession,
    mailbox_id: int,
    folder: str,
    *,
    first_sync_days: int,
    backend: CrmBackend | None = None,
    on_saved: Callable[[], None] | None = None,
    today: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Bring ``folder`` up to date; returns how many new messages were stored."""
    status = await imap.select(folder)
    state = await folder_state(sessions, mailbox_id, folder)
    if state is None or state.uidvalidity != status.uidvalidity:
        if state is not None:
            log.warning("mailbox %s folder %r: UIDVALIDITY changed, scanning it again", mailbox_id, folder)
        uids = await imap.uids_since((today() - timedelta(days=first_sync_days)).date())
    else:
        uids = await imap.uids_after(state.last_uid)
    saved = 0
    for start in range(0, len(uids), FETCH_BATCH):
        async for uid, raw in imap.fetch(uids[start:start + FETCH_BATCH]):
            if await _save_one(sessions, mailbox_id, folder, status.uidvalidity, uid, raw, backend):
                saved += 1
                if on_saved is not None:
                    on_saved()
    # Messages outside the first-sync window are never fetched later: the folder is "done" up to UIDNEXT-1,
    # read at SELECT, before the search, so nothing that arrived since is skipped.
    done_up_to = max([*uids, (status.uidnext or 1) - 1, 0])
    async with sessions() as session, session.begin():
        await _advance(session, mailbox_id, folder, status.uidvalidity, done_up_to)
    return saved
