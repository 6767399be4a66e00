"""`python -m bench.mail_bench`: messages per second from a real Dovecot inbox into CRM activities.

A throwaway Dovecot (the tests' recipe, tests/mail_bridge/dovecot.py) gets N messages from N new senders
over LMTP; a fresh SQLite database gets a mailbox with its CRM integration on. The timed part is what
the bridge does in production: the IMAP sync stores and decides every message (store once, the ONE
engine, the outbox entry), then the outbox worker writes a lead and an activity for each. Memory is
the process's peak resident size (ru_maxrss) and its growth over the run.

Last line: ``mail: messages=N seconds=S messages_per_s=R sync_per_s=R peak_rss_mb=M rss_growth_mb=G``.
The lead's ``python -m bench`` calls :func:`run_mail_bench` and prints :meth:`MailBenchResult.row`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import smtplib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.models import Activity, Employee, Mailbox, QueueGroup, QueueMember
from gateway.storage.session import make_engine, make_sessionmaker, migrate
from mail_bridge.imap import ImapSession
from mail_bridge.service import account_of
from mail_bridge.sync import sync_folder

ADDRESS = "bench@example.test"
PASSWORD = "bench-pw"


@dataclass(frozen=True)
class MailBenchResult:
    """One run: N messages into N activities, the time taken and the memory used."""

    messages: int
    activities: int
    sync_seconds: float
    total_seconds: float
    peak_rss_mb: float
    rss_growth_mb: float

    @property
    def per_second(self) -> float:
        return self.activities / self.total_seconds if self.total_seconds else 0.0

    def row(self) -> str:
        return (f"mail: messages={self.messages} seconds={self.total_seconds:.2f} "
                f"messages_per_s={self.per_second:.0f} sync_per_s={self.messages / self.sync_seconds:.0f} "
                f"peak_rss_mb={self.peak_rss_mb:.0f} rss_growth_mb={self.rss_growth_mb:.0f}")


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _message(i: int) -> bytes:
    return (f"From: Client {i} <client{i}@bench.example>\r\nTo: {ADDRESS}\r\nSubject: Request {i}\r\n"
            f"Date: Fri, 04 Dec 2026 10:30:00 +0200\r\nMessage-ID: <bench-{i}@bench.example>\r\n\r\n"
            f"Hello, please send a quote ({i}).\r\n" + "x" * 2000 + "\r\n").encode()


def fill_inbox(lmtp_port: int, messages: int) -> None:
    """Deliver the messages over LMTP, the way mail reaches a real inbox."""
    with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=30) as lmtp:
        for i in range(messages):
            lmtp.sendmail(f"client{i}@bench.example", [ADDRESS], _message(i))


async def _seed(url: str, imap_port: int) -> int:
    await migrate(url)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            agent = Employee(name="Bench agent", extension="1001")
            session.add(agent)
            await session.flush()
            queue = QueueGroup(name="Bench queue")
            queue.members.append(QueueMember(employee_id=agent.id, position=1))
            session.add(queue)
            await session.flush()
            mailbox = Mailbox(address=ADDRESS, imap_host="127.0.0.1", imap_port=imap_port, tls_mode="none",
                              login=ADDRESS, secret=PASSWORD, folders=["INBOX"], crm_integration=True,
                              queue_group_id=queue.id, connected_by_id=agent.id)
            session.add(mailbox)
            await session.flush()
            return mailbox.id
    finally:
        await engine.dispose()


async def _timed_run(url: str, mailbox_id: int) -> tuple[int, float, float]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session:
            mailbox = await session.get(Mailbox, mailbox_id)
            assert mailbox is not None
            account = account_of(mailbox)
        start = time.perf_counter()
        imap = await ImapSession.open(account, 60.0)
        try:
            await sync_folder(sessions, imap, mailbox_id, "INBOX", first_sync_days=3650)
        finally:
            await imap.close()
        synced = time.perf_counter()
        worker = OutboxWorker(sessions, BuiltinCrm())
        await worker.run_once()  # applies every due entry, batch after batch
        done = time.perf_counter()
        async with sessions() as session:
            activities = int(await session.scalar(sa.select(sa.func.count()).select_from(Activity)) or 0)
        return activities, synced - start, done - start
    finally:
        await engine.dispose()


def run_mail_bench(messages: int = 1000) -> MailBenchResult:
    """Start Dovecot, fill its inbox, sync it into a fresh CRM, stop Dovecot; the figures."""
    from tests.mail_bridge.dovecot import start_dovecot

    dovecot = start_dovecot({ADDRESS: PASSWORD})
    try:
        fill_inbox(dovecot.lmtp_port, messages)
        with tempfile.TemporaryDirectory(prefix="mail-bench-") as scratch:
            url = f"sqlite+aiosqlite:///{Path(scratch) / 'bench.db'}"
            mailbox_id = asyncio.run(_seed(url, dovecot.imap_port))
            before = _rss_mb()
            activities, sync_s, total_s = asyncio.run(_timed_run(url, mailbox_id))
            peak = _rss_mb()
    finally:
        dovecot.cleanup()
    return MailBenchResult(messages, activities, sync_s, total_s, peak, peak - before)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mail_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000, help="messages in the inbox (default %(default)s)")
    args = parser.parse_args(argv)
    result = run_mail_bench(args.messages)
    print(f"{result.activities} of {result.messages} messages became CRM activities in "
          f"{result.total_seconds:.2f} s (IMAP sync + decisions {result.sync_seconds:.2f} s)")
    print(result.row())
    return 0 if result.activities == result.messages else 1


if __name__ == "__main__":
    sys.exit(main())
