"""Admin API tests run against a real, migrated SQLite database through an in-process ASGI client.

Alembic runs once per session into a template file; each test gets its own copy of it.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.admin.api import build_app
from gateway.admin.auth import issue_token
from gateway.storage.models import Employee, EmployeeRight
from gateway.storage.session import make_engine, make_sessionmaker, upgrade_database


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("admin-template") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def db_url(migrated_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "gateway.db"
    shutil.copyfile(migrated_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
async def sessionmaker(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def app(sessionmaker: async_sessionmaker[AsyncSession]):
    return build_app(sessionmaker)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as http:
        yield http


@dataclass(frozen=True)
class User:
    """An employee of the test database with a working API token."""

    employee_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_user(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, *, is_admin: bool = False,
    can_manage_numbers: bool = False, rights: dict[str, tuple[str, str]] | None = None,
    extension: str | None = None,
) -> User:
    """Insert an employee straight into the database and issue them a token."""
    async with sessionmaker() as session:
        employee = Employee(name=name, is_admin=is_admin, can_manage_numbers=can_manage_numbers,
                            extension=extension, active=True,
                            rights=[EmployeeRight(item_type=t, view=v, edit=e)
                                    for t, (v, e) in (rights or {}).items()])
        session.add(employee)
        await session.flush()
        _, token = await issue_token(session, employee.id, f"{name} test token")
        await session.commit()
        return User(employee_id=employee.id, token=token)


@pytest.fixture
async def admin(sessionmaker) -> User:
    return await make_user(sessionmaker, "Alice Admin", is_admin=True, extension="100")


@pytest.fixture
async def manager(sessionmaker) -> User:
    return await make_user(sessionmaker, "Marc Manager", can_manage_numbers=True, extension="101")


@pytest.fixture
async def plain(sessionmaker) -> User:
    return await make_user(sessionmaker, "Paula Plain", extension="102",
                           rights={"lead": ("own", "own"), "contact": ("own", "own")})
