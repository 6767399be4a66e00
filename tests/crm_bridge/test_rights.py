"""Rights per item type (view/edit: none | own | all), decided in one place; admins may do everything."""

from __future__ import annotations

import pytest

from gateway.crm_bridge.backend import NewItem
from gateway.crm_bridge.rights import (
    NOBODY,
    SYSTEM,
    Access,
    AccessDenied,
    Actor,
    Scope,
    can_view_all,
    check_right,
    load_actor,
    require_right,
)
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.models import Employee, EmployeeRight
from tests.crm_bridge.conftest import Db, World

ME, OTHER = 7, 8


def actor(**rights: tuple[str, str]) -> Actor:
    return Actor(employee_id=ME, rights={t: (Scope(v), Scope(e)) for t, (v, e) in rights.items()})


@pytest.mark.parametrize(
    ("view", "responsible", "allowed"),
    [
        ("none", ME, False),
        ("none", None, False),
        ("own", ME, True),
        ("own", OTHER, False),
        ("own", None, False),  # an item nobody owns is not "own"
        ("all", OTHER, True),
        ("all", None, True),
    ],
)
def test_view_scope_per_item_type(view: str, responsible: int | None, allowed: bool) -> None:
    employee = actor(lead=(view, "none"))
    assert check_right(employee, "lead", "view", responsible) is allowed
    assert check_right(employee, "lead", Access.EDIT, responsible) is False  # edit is separate


def test_rights_of_one_type_do_not_leak_to_another() -> None:
    employee = actor(deal=("all", "all"))
    assert check_right(employee, "deal", "edit", OTHER)
    for item_type in ("lead", "contact", "company"):
        assert not check_right(employee, item_type, "view", ME)


def test_admins_may_do_everything_and_system_is_an_admin() -> None:
    admin = Actor(employee_id=1, is_admin=True)
    for who in (admin, SYSTEM):
        for item_type in ("lead", "contact", "company", "deal"):
            assert check_right(who, item_type, "edit", None)
            assert check_right(who, item_type, "view", OTHER)


def test_nobody_may_do_nothing() -> None:
    assert not check_right(NOBODY, "lead", "view", None)


def test_require_right_says_which_right_is_missing() -> None:
    with pytest.raises(AccessDenied, match="needs the edit right on contacts"):
        require_right(actor(contact=("all", "own")), "contact", "edit", OTHER)


def test_unknown_item_type_or_action_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown item type 'invoice'"):
        check_right(SYSTEM, "invoice", "view", None)
    with pytest.raises(ValueError):
        check_right(SYSTEM, "lead", "delete", None)


def test_m7_an_activity_on_several_items_needs_view_on_every_one() -> None:
    employee = actor(deal=("all", "all"), contact=("own", "own"))
    assert can_view_all(employee, [("deal", OTHER), ("contact", ME)])
    assert not can_view_all(employee, [("deal", ME), ("contact", OTHER)])


async def test_load_actor_reads_rights_and_refuses_inactive_employees(sqlite_db: Db) -> None:
    async with sqlite_db.sessions() as session, session.begin():
        worker = Employee(name="Dana")
        gone = Employee(name="Eve", active=False, is_admin=True)
        session.add_all([worker, gone])
        await session.flush()
        session.add(EmployeeRight(employee_id=worker.id, item_type="lead", view="all", edit="own"))
    async with sqlite_db.sessions() as session:
        dana = await load_actor(session, worker.id)
        eve = await load_actor(session, gone.id)
        unknown = await load_actor(session, 999_999)

    assert dana.employee_id == worker.id and not dana.is_admin
    assert check_right(dana, "lead", "view", None)
    assert check_right(dana, "lead", "edit", worker.id) and not check_right(dana, "lead", "edit", None)
    assert not check_right(dana, "contact", "view", worker.id)  # no row: no right
    assert eve == NOBODY and unknown == NOBODY


async def test_the_store_enforces_rights_on_create_close_and_convert(
    sqlite_db: Db, sqlite_world: World
) -> None:
    db, world = sqlite_db, sqlite_world
    crm = BuiltinCrm()
    anna = Actor(employee_id=world.anna, rights={"lead": (Scope.ALL, Scope.OWN)})
    async with db.sessions() as session, session.begin():
        mine = await crm.create_lead(
            session, title="mine", new=NewItem(responsible_id=world.anna), actor=anna
        )
        theirs = await crm.create_lead(session, title="theirs", new=NewItem(responsible_id=world.boris))
    async with db.sessions() as session, session.begin():
        with pytest.raises(AccessDenied):
            await crm.create_lead(
                session, title="for boris", new=NewItem(responsible_id=world.boris), actor=anna
            )
        with pytest.raises(AccessDenied):
            await crm.close_item(session, theirs, actor=anna)
        with pytest.raises(AccessDenied, match="contact"):  # converting needs edit on the new types too
            await crm.convert_lead(session, mine.id, to=("contact",), actor=anna)
        await crm.close_item(session, mine, actor=anna)
    assert await db.count("leads", "status = 'closed'") == 1
    assert await db.count("leads", "id = :i AND status = 'active'", i=theirs.id) == 1
    assert await db.count("contacts") == 0
