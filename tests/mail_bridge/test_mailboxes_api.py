"""/mailboxes through the real admin app on a migrated database: the secret is write-only, the sync state
is shown, only the connector or an admin changes a mailbox, and a manual save follows M3/M4."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.admin.api import build_app
from gateway.admin.auth import issue_token
from gateway.storage.models import Mailbox
from tests.crm_bridge.conftest import Db, World
from tests.mail_bridge.conftest import MailWorld
from tests.mail_bridge.helpers import deliver, leads, message


async def token(db: Db, employee_id: int) -> dict[str, str]:
    async with db.sessions() as session, session.begin():
        _, plain = await issue_token(session, employee_id, "test")
    return {"Authorization": f"Bearer {plain}"}


@pytest.fixture
async def api(sqlite_db: Db) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(sqlite_db.sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        yield client


BODY = {"address": "Sales@OurCo.example", "imap_host": "imap.ourco.example", "login": "sales",
        "secret": "imap-pa55word", "folders": ["INBOX", "Archive"], "crm_integration": False}


async def test_m1_mailbox_secret_is_write_only_and_the_connector_is_recorded(
    sqlite_db: Db, sqlite_world: World, api: httpx.AsyncClient
) -> None:
    boris = await token(sqlite_db, sqlite_world.boris)
    created = await api.post("/mailboxes", json={**BODY, "access_employee_ids": [sqlite_world.anna]}, headers=boris)
    assert created.status_code == 201, created.text
    assert "imap-pa55word" not in created.text and created.json()["secret_set"] is True
    mailbox = created.json()
    assert mailbox["address"] == "sales@ourco.example" and mailbox["connected_by_id"] == sqlite_world.boris
    assert mailbox["state"] == "new" and mailbox["crm_integration"] is False
    listed = await api.get("/mailboxes", headers=await token(sqlite_db, sqlite_world.anna))
    assert [m["id"] for m in listed.json()["items"]] == [mailbox["id"]] and "imap-pa55word" not in listed.text
    anna_change = await api.patch(f"/mailboxes/{mailbox['id']}", json={"crm_integration": True},
                                  headers=await token(sqlite_db, sqlite_world.anna))
    assert anna_change.status_code == 403 and "connected" in anna_change.json()["detail"]
    hidden = await api.get(f"/mailboxes/{mailbox['id']}", headers=await token(sqlite_db, sqlite_world.chloe))
    assert hidden.status_code == 404
    changed = await api.patch(f"/mailboxes/{mailbox['id']}", json={"secret": "new-secret", "spam_folder": "INBOX"},
                              headers=boris)
    assert changed.status_code == 200 and "new-secret" not in changed.text
    async with sqlite_db.sessions() as session:
        stored = await session.get(Mailbox, mailbox["id"])
        assert stored is not None and stored.secret == "new-secret" and stored.spam_folder == "INBOX"
    smtp = await api.patch(f"/mailboxes/{mailbox['id']}", headers=boris, json={
        "smtp_host": "smtp.ourco.example", "smtp_port": 465, "smtp_tls_mode": "tls", "smtp_secret": "smtp-pa55"})
    assert smtp.status_code == 200 and "smtp-pa55" not in smtp.text
    assert (smtp.json()["smtp_host"], smtp.json()["smtp_tls_mode"], smtp.json()["smtp_secret_set"]) == (
        "smtp.ourco.example", "tls", True)
    bad = await api.post("/mailboxes", json={**BODY, "address": "not an address"}, headers=boris)
    assert bad.status_code == 422 and "address" in bad.text


async def test_m3_m4_manual_save_through_the_api(sqlite_db: Db, sqlite_world: World) -> None:
    from tests.mail_bridge.conftest import seed_mailbox

    world = MailWorld(sqlite_world, await seed_mailbox(sqlite_db, sqlite_world, crm_integration=False))
    new = await deliver(sqlite_db, world.mailbox_id, message())
    employee = await deliver(sqlite_db, world.mailbox_id, message(sender="anna@ourco.example", message_id="<e@o>"))
    transport = httpx.ASGITransport(app=build_app(sqlite_db.sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as api:
        anna = await token(sqlite_db, sqlite_world.anna)  # has access to the mailbox
        saved = await api.post(f"/mailboxes/{world.mailbox_id}/messages/{new.message_id}/save", headers=anna)
        assert saved.status_code == 200, saved.text
        assert saved.json()["action"] == "create_lead" and saved.json()["rule_ids"][-1] == "M3"
        refused = await api.post(f"/mailboxes/{world.mailbox_id}/messages/{employee.message_id}/save", headers=anna)
        assert refused.status_code == 422 and "error saving the email to the CRM" in refused.json()["detail"]
        outsider = await token(sqlite_db, sqlite_world.chloe)
        denied = await api.post(f"/mailboxes/{world.mailbox_id}/messages/{new.message_id}/save", headers=outsider)
        assert denied.status_code == 404
    await deliver(sqlite_db, world.mailbox_id, message())  # one outbox pass
    assert len(await leads(sqlite_db)) == 1
