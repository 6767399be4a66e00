"""The demo mailbox of `make run`: added once beside the demo seed, with its CRM integration off, and the
bridge marks its placeholder server failing with the reason instead of stopping."""

from __future__ import annotations

import asyncio

from gateway.config import MailConfig
from gateway.demo import seed_demo
from gateway.storage.models import Mailbox
from mail_bridge.demo import DEMO_MAILBOX, announcement, seed_demo_mailbox
from mail_bridge.service import run_mail_bridge
from tests.crm_bridge.conftest import Db


async def test_m1_demo_mailbox_is_added_once_with_integration_off_and_shows_failing(sqlite_db: Db) -> None:
    await seed_demo(sqlite_db.sessions)
    mailbox_id = await seed_demo_mailbox(sqlite_db.sessions)
    assert mailbox_id is not None and await seed_demo_mailbox(sqlite_db.sessions) is None
    assert DEMO_MAILBOX in (announcement(mailbox_id) or "") and announcement(None) is None
    stop = asyncio.Event()
    bridge = asyncio.create_task(run_mail_bridge(sqlite_db.sessions, MailConfig(poll_seconds=1, timeout_seconds=2), stop))
    try:
        for _ in range(100):
            async with sqlite_db.sessions() as session:
                mailbox = await session.get(Mailbox, mailbox_id)
                assert mailbox is not None
                if mailbox.state == "failing":
                    break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(bridge, 10)
    assert mailbox.crm_integration is False and mailbox.connected_by_id is not None
    assert mailbox.state == "failing" and mailbox.last_error
