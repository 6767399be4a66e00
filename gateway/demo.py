"""The demo seed `make run` plants in a new database, so a newcomer can try `gateway simulate` at once.

Two employees (Alice, an admin, extension 1001; Bruno, extension 1002) whose phones can register, the
queue group "Sales" with both (in order, 20 s each; Alice first: she becomes responsible of new leads,
SPEC T10), and one rented number with its E.164 and CRM-integration settings. An admin API token for
Alice is either taken from the configuration or made here and returned once, for the caller to print;
only its hash is stored.

Demo-only SIP secrets (register a softphone as 1001 or 1002 in the gateway's realm): DEMO_SIP_SECRETS
below. They are stored as digest HA1s like any other; change them before any real use.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.auth import hash_token, issue_token
from gateway.admin.sip_credentials import DEFAULT_REALM, set_sip_secret
from gateway.crm_bridge.identity import normalize_phone
from gateway.storage.e164 import number_e164
from gateway.storage.models import (
    ApiToken,
    Employee,
    EmployeePhone,
    EmployeeRight,
    Number,
    QueueGroup,
    QueueMember,
    Source,
    Trunk,
)

DEMO_NUMBER = "+33 1 84 88 00 00"
DEMO_REGION = "FR"
DEMO_TOKEN_NAME = "demo admin token"
DEMO_RING_TIME_S = 20
# Demo only (the same passwords as config/demo.toml's [[sip.users]]), so either source of credentials works.
DEMO_SIP_SECRETS = {"1001": "demo-1001", "1002": "demo-1002"}
_ALL_RIGHTS = ("lead", "contact", "company", "deal")


@dataclass(frozen=True)
class DemoSeed:
    """What seeding did: `created` is False when the database already held data (nothing changed).

    `admin_token` is the plain token when this call generated one (show it once), else None.
    `admin_id` is the first active administrator's employee id (the one a new token is usually for).
    """

    created: bool
    admin_token: str | None = None
    admin_id: int | None = None

    def announcement(self, command: str = "gateway", config_path: str | None = None) -> str:
        """The lines to print at start-up; `command` is how the operator runs the gateway's CLI
        (e.g. ``.venv/bin/gateway``), `config_path` the configuration file the gateway was started with."""
        config = f" --config {shlex.quote(config_path)}" if config_path else ""
        if not self.created:
            lines = ["database already configured: demo seed skipped"]
            if self.admin_id is not None:
                lines.append(f"need an admin API token? {command} token create{config} --employee {self.admin_id}")
            else:
                lines.append(f"no administrator yet: {command} admin create{config} --name NAME creates one "
                             "and prints their admin API token")
            return "\n".join(lines)
        lines = [f"demo seeded: employees Alice (admin, ext 1001) and Bruno (ext 1002), queue group Sales "
                 f"(in order, {DEMO_RING_TIME_S} s each), rented number {DEMO_NUMBER}; demo phone secrets: "
                 "see gateway/demo.py",
                 f"try: {command} simulate call{config} --number {shlex.quote(DEMO_NUMBER)} "
                 f"--from {shlex.quote('+33 6 12 34 56 78')}"]
        if self.admin_token:
            lines.append(f"admin API token (shown once, store it now): {self.admin_token}")
        return "\n".join(lines)


async def database_is_empty(session: AsyncSession) -> bool:
    """True when no employee, number, queue group or trunk exists yet (the migration's seed rows do not count)."""
    for model in (Employee, Number, QueueGroup, Trunk):
        if await session.scalar(select(func.count()).select_from(model)):
            return False
    return True


async def first_admin_id(session: AsyncSession) -> int | None:
    """The lowest id of an active administrator, or None when there is none."""
    return await session.scalar(
        select(func.min(Employee.id)).where(Employee.is_admin.is_(True), Employee.active.is_(True)))


def _employee(name: str, extension: str, mobile: str, *, is_admin: bool, realm: str) -> Employee:
    employee = Employee(
        name=name, extension=extension, is_admin=is_admin, can_manage_numbers=is_admin, active=True,
        phones=[EmployeePhone(value=mobile, normalized=normalize_phone(mobile, DEMO_REGION) or mobile)],
        rights=[EmployeeRight(item_type=t, view="all", edit="all") for t in _ALL_RIGHTS],
    )
    set_sip_secret(employee, extension, realm, DEMO_SIP_SECRETS[extension])
    return employee


async def seed_demo(
    sessionmaker: async_sessionmaker[AsyncSession], *, admin_token: str | None = None, realm: str = DEFAULT_REALM
) -> DemoSeed:
    """Seed the demo when the database is empty; do nothing otherwise (idempotent).

    `admin_token`: a token chosen in the configuration; when None a fresh one is generated and returned.
    `realm`: the gateway's SIP realm, which the demo phones' digest HA1s are computed for.
    """
    async with sessionmaker() as session:
        if not await database_is_empty(session):
            return DemoSeed(created=False, admin_id=await first_admin_id(session))
        alice = _employee("Alice Martin", "1001", "+33 6 12 00 10 01", is_admin=True, realm=realm)
        bruno = _employee("Bruno Rossi", "1002", "+33 6 12 00 10 02", is_admin=False, realm=realm)
        session.add_all([alice, bruno])
        await session.flush()
        sales = QueueGroup(name="Sales", strategy="in_order", ring_time_s=DEMO_RING_TIME_S,
                           members=[QueueMember(employee_id=alice.id, position=1),
                                    QueueMember(employee_id=bruno.id, position=2)])
        session.add(sales)
        await session.flush()
        call_source = await session.scalar(select(Source.id).where(Source.code == "CALL"))
        # The demo's provider is a SIPp on this host (docker/compose.yaml's "trunk"). Trusting it by source
        # would trust every phone on the loopback too, so it is a digest trunk whose login nobody knows: the
        # configuration's [[sip.trunks]] is what trusts the demo's inbound calls.
        provider = Trunk(name="Demo provider", kind="provider", host="127.0.0.1", port=5090, trust="digest",
                         username="demo-provider", secret=secrets.token_urlsafe(24))
        session.add(provider)
        await session.flush()
        session.add(Number(
            kind="rented", number=DEMO_NUMBER, e164=number_e164(DEMO_NUMBER, DEMO_REGION),
            name="Demo main line", default_region=DEMO_REGION,
            queue_group_id=sales.id, trunk_id=provider.id, default_outbound=True,
            unknown_caller_action="auto_lead", create_for="all", source_id=call_source,
            route_known_to_responsible=True, change_responsible_on_transfer=True,
        ))
        plain: str | None = None
        if admin_token:
            session.add(ApiToken(employee_id=alice.id, token_hash=hash_token(admin_token), name=DEMO_TOKEN_NAME))
        else:
            _, plain = await issue_token(session, alice.id, DEMO_TOKEN_NAME)
        await session.commit()
        return DemoSeed(created=True, admin_token=plain, admin_id=alice.id)


async def seed_demo_if_new(url: str, *, admin_token: str | None = None, realm: str = DEFAULT_REALM) -> DemoSeed:
    """Migrate the database at `url` to head, then :func:`seed_demo` it (for `make run` start-up)."""
    from gateway.storage.session import make_engine, make_sessionmaker, migrate

    await migrate(url)
    engine = make_engine(url)
    try:
        return await seed_demo(make_sessionmaker(engine), admin_token=admin_token, realm=realm)
    finally:
        await engine.dispose()
