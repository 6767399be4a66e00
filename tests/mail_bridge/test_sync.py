"""IMAP sync against a real Dovecot (IMAP + IDLE, mail delivered over LMTP): every message saved once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest
import sqlalchemy as sa

from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.models import Mailbox, MailMessage
from mail_bridge.imap import ImapSession
from mail_bridge.service import MailboxRunner, Timers, account_of
from mail_bridge.sync import folder_state, sync_folder
from tests.mail_bridge.conftest import ImapWorld, seed_mailbox
from tests.mail_bridge.helpers import leads, message

FAST = Timers(poll=30.0, idle=30.0, retry_max=1.0, timeout=10.0)


def numbered(i: int, **kw: str) -> bytes:
    return message(sender=f"Client {i} <client{i}@client.example>", message_id=f"<n{i}@client.example>",
                   subject=f"request {i}", **kw)


async def stored(world: ImapWorld) -> int:
    return await world.db.count("mail_messages", "mailbox_id = :m", m=world.mailbox_id)


async def wait_for(check: Callable[[], object], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if await check():  # type: ignore[misc]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met in {seconds} s")


@contextlib.asynccontextmanager
async def running(world: ImapWorld, mailbox_id: int | None = None, timers: Timers = FAST) -> AsyncIterator[None]:
    stop = asyncio.Event()
    runner = MailboxRunner(world.db.sessions, mailbox_id or world.mailbox_id, timers)
    task = asyncio.create_task(runner.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def sync_once(world: ImapWorld, folder: str = "INBOX") -> int:
    async with world.db.sessions() as session:
        mailbox = await session.get(Mailbox, world.mailbox_id)
        assert mailbox is not None
        account = account_of(mailbox)
    imap = await ImapSession.open(account, 10.0)
    try:
        return await sync_folder(world.db.sessions, imap, world.mailbox_id, folder, first_sync_days=30)
    finally:
        await imap.close()


async def test_m12_sync_saves_each_message_once_and_a_restart_resumes_after_the_last(imap_world: ImapWorld) -> None:
    for i in range(5):
        imap_world.dovecot.deliver(imap_world.address, numbered(i))
    assert await sync_once(imap_world) == 5
    assert await sync_once(imap_world) == 0, "a second pass (a restart) repeats nothing"
    imap_world.dovecot.deliver(imap_world.address, numbered(5))
    assert await sync_once(imap_world) == 1
    state = await folder_state(imap_world.db.sessions, imap_world.mailbox_id, "INBOX")
    assert state is not None and state.last_uid == 6
    await OutboxWorker(imap_world.db.sessions, BuiltinCrm()).run_once()
    assert len(await leads(imap_world.db)) == 6


async def test_idle_brings_new_mail_without_waiting_for_the_poll(imap_world: ImapWorld) -> None:
    async with running(imap_world):
        await wait_for(lambda: _state_ok(imap_world))
        started = time.monotonic()
        imap_world.dovecot.deliver(imap_world.address, numbered(1))
        await wait_for(lambda: _has(imap_world, 1), seconds=10)
        assert time.monotonic() - started < FAST.poll / 2, "saved by IDLE, not by the 30 s poll"


async def test_sync_survives_dovecot_restarted_mid_sync(imap_world: ImapWorld) -> None:
    for i in range(10):
        imap_world.dovecot.deliver(imap_world.address, numbered(i))
    async with running(imap_world):
        await wait_for(lambda: _has(imap_world, 1))
        imap_world.dovecot.restart()
        for i in range(10, 20):
            imap_world.dovecot.deliver(imap_world.address, numbered(i))
        await wait_for(lambda: _has(imap_world, 20), seconds=40)
    assert await stored(imap_world) == 20
    async with imap_world.db.sessions() as session:
        keys = (await session.scalars(sa.select(MailMessage.message_key))).all()
    assert sorted(keys) == sorted(f"<n{i}@client.example>" for i in range(20))


async def test_uidvalidity_change_rescans_without_saving_twice(imap_world: ImapWorld) -> None:
    for i in range(3):
        imap_world.dovecot.deliver(imap_world.address, numbered(i))
    assert await sync_once(imap_world) == 3
    before = await folder_state(imap_world.db.sessions, imap_world.mailbox_id, "INBOX")
    assert before is not None
    await asyncio.sleep(1.1)  # Dovecot's new UIDVALIDITY is the current time in seconds
    imap_world.dovecot.stop()
    # Without its UID list and index Dovecot numbers the folder afresh, under a new UIDVALIDITY.
    for state_file in imap_world.dovecot.maildir(imap_world.address).glob("dovecot*"):
        state_file.unlink()
    imap_world.dovecot.start()
    imap_world.dovecot.deliver(imap_world.address, numbered(3))
    assert await sync_once(imap_world) == 1
    after = await folder_state(imap_world.db.sessions, imap_world.mailbox_id, "INBOX")
    assert after is not None and after.uidvalidity != before.uidvalidity
    assert await stored(imap_world) == 4


async def test_m12_the_same_message_in_two_synced_folders_is_saved_once(imap_world: ImapWorld) -> None:
    user = imap_world.address.split("@")[0]
    imap_world.dovecot.deliver(imap_world.address, numbered(1))
    imap_world.dovecot.deliver(f"{user}+Spam@example.test", numbered(1))
    assert await sync_once(imap_world, "INBOX") == 1
    assert await sync_once(imap_world, "Spam") == 0
    assert await stored(imap_world) == 1


async def test_a_refused_login_is_marked_failing_with_back_off_and_never_stops_the_others(
    imap_world: ImapWorld,
) -> None:
    bad = await seed_mailbox(imap_world.db, imap_world.crm, address="wrong@example.test", login=imap_world.address,
                             secret="not-the-password", imap_port=imap_world.dovecot.imap_port)
    imap_world.dovecot.deliver(imap_world.address, numbered(1))
    async with running(imap_world, bad), running(imap_world):
        await wait_for(lambda: _has(imap_world, 1))
        await wait_for(lambda: _failures(imap_world, bad, 2), seconds=30)
    async with imap_world.db.sessions() as session:
        failing = await session.get(Mailbox, bad)
        assert failing is not None and failing.state == "failing"
        assert "login refused" in (failing.last_error or "") and "not-the-password" not in failing.last_error
        assert failing.next_attempt_at is not None
    assert Timers(retry_max=300).backoff(1) == 1 and Timers(retry_max=300).backoff(4) == 8
    assert Timers(retry_max=300).backoff(30) == 300


@pytest.mark.parametrize("kind", ["broken_mime", "eight_bit", "huge_attachment", "no_message_id"])
async def test_hard_messages_are_stored_and_linked_and_never_stop_the_sync(imap_world: ImapWorld, kind: str) -> None:
    hard = {
        "broken_mime": message(message_id="<bad@x>", extra='Content-Type: multipart/mixed; boundary="zz"',
                               body=b"--zz\r\nContent-Type: text/plain; charset=bogus\r\n\r\nno end"),
        "eight_bit": b"From: Ren\xe9 <rene@client.example>\r\nSubject: caf\xe9\r\nMessage-ID: <8bit@x>\r\n\r\nhi\r\n",
        "huge_attachment": message(message_id="<big@x>", extra="Content-Type: multipart/mixed; boundary=b",
                                   body=b"--b\r\n\r\n" + b"QUJD" * (5 * 1024 * 1024) + b"\r\n--b--\r\n"),
        "no_message_id": message(message_id=None),
    }[kind]
    imap_world.dovecot.deliver(imap_world.address, hard)
    imap_world.dovecot.deliver(imap_world.address, numbered(99))
    assert await sync_once(imap_world) == 2
    await OutboxWorker(imap_world.db.sessions, BuiltinCrm()).run_once()
    assert len(await leads(imap_world.db)) == 2


async def test_1000_messages_in_an_inbox_are_each_saved_once(imap_world: ImapWorld) -> None:
    import smtplib

    with smtplib.LMTP("127.0.0.1", imap_world.dovecot.lmtp_port, timeout=30) as lmtp:
        for i in range(1000):
            lmtp.sendmail("s@client.example", [imap_world.address], numbered(i))
    assert await sync_once(imap_world) == 1000
    assert await sync_once(imap_world) == 0
    assert await stored(imap_world) == 1000


async def _state_ok(world: ImapWorld) -> bool:
    return await world.db.count("mailboxes", "id = :m AND state = 'ok'", m=world.mailbox_id) == 1


async def _has(world: ImapWorld, n: int) -> bool:
    return await stored(world) >= n


async def _failures(world: ImapWorld, mailbox_id: int, n: int) -> bool:
    return await world.db.count("mailboxes", "id = :m AND failures >= :n", m=mailbox_id, n=n) == 1
