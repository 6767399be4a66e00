"""`gateway admin create` and `gateway token create` through the real CLI (subprocesses) on SQLite:
the first administrator of a database without a demo, and a replacement token for a lost one (T2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.admin.api import build_app
from gateway.storage.session import make_engine, make_sessionmaker


def gateway_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def write_config(directory: Path, url: str | None = None) -> Path:
    config = directory / "gateway.toml"
    url = url or f"sqlite+aiosqlite:///{directory / 'gateway.db'}"
    config.write_text(f'[sip]\nlisten = ["udp:127.0.0.1:5060"]\n[database]\nurl = "{url}"\nseed_demo = false\n')
    return config


async def api_get(directory: Path, token: str, path: str) -> httpx.Response:
    engine = make_engine(f"sqlite+aiosqlite:///{directory / 'gateway.db'}")
    try:
        app = build_app(make_sessionmaker(engine))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
            return await client.get(path, headers={"Authorization": f"Bearer {token}"})
    finally:
        await engine.dispose()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


async def test_t2_admin_create_gives_a_new_database_its_first_admin_token(tmp_path, config):
    done = gateway_cli("admin", "create", "--config", str(config), "--name", "Root Admin",
                       "--email", "root@example.com", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("gwt_") and "\n" not in token  # stdout is the token alone
    assert token not in done.stderr and "employee 1" in done.stderr
    me = await api_get(tmp_path, token, "/me")
    assert me.status_code == 200
    assert me.json() == {"employee_id": 1, "name": "Root Admin", "is_admin": True, "can_manage_numbers": True}
    employee = (await api_get(tmp_path, token, "/employees/1")).json()
    assert employee["emails"] == ["root@example.com"]
    assert {r["item_type"]: (r["view"], r["edit"]) for r in employee["rights"]}["lead"] == ("all", "all")


async def test_t2_cli_tokens_are_stored_hashed(tmp_path, config):
    created = gateway_cli("admin", "create", "--config", str(config), "--name", "Root", cwd=tmp_path)
    issued = gateway_cli("token", "create", "--config", str(config), "--employee", "1", cwd=tmp_path)
    assert created.returncode == issued.returncode == 0
    stored = (tmp_path / "gateway.db").read_bytes()
    for token in (created.stdout.strip(), issued.stdout.strip()):
        assert token.encode() not in stored


async def test_t2_token_create_replaces_a_lost_token_and_keeps_the_others(tmp_path, config):
    first = gateway_cli("admin", "create", "--config", str(config), "--name", "Root", cwd=tmp_path).stdout.strip()
    done = gateway_cli("token", "create", "--config", str(config), "--employee", "1", "--name", "laptop",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    second = done.stdout.strip()
    assert second.startswith("gwt_") and second != first
    assert (await api_get(tmp_path, second, "/me")).json()["employee_id"] == 1
    assert (await api_get(tmp_path, first, "/me")).status_code == 200
    names = [t["name"] for t in (await api_get(tmp_path, second, "/tokens")).json()["items"]]
    assert names == ["issued by gateway admin create", "laptop"]


def test_token_create_for_an_unknown_employee_exits_2(tmp_path, config):
    assert gateway_cli("admin", "create", "--config", str(config), "--name", "Root", cwd=tmp_path).returncode == 0
    done = gateway_cli("token", "create", "--config", str(config), "--employee", "42", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "employee 42 not found" in done.stderr and "Traceback" not in done.stderr


async def test_token_create_for_a_deactivated_employee_exits_2(tmp_path, config):
    token = gateway_cli("admin", "create", "--config", str(config), "--name", "Root", cwd=tmp_path).stdout.strip()
    assert gateway_cli("admin", "create", "--config", str(config), "--name", "Gone", cwd=tmp_path).returncode == 0
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    app = build_app(make_sessionmaker(engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
        gone = await client.patch("/employees/2", headers={"Authorization": f"Bearer {token}"}, json={"active": False})
    await engine.dispose()
    assert gone.status_code == 200
    done = gateway_cli("token", "create", "--config", str(config), "--employee", "2", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "employee 2 (Gone) is deactivated" in done.stderr


def test_token_create_on_a_database_without_schema_exits_2_and_creates_nothing(tmp_path, config):
    done = gateway_cli("token", "create", "--config", str(config), "--employee", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert "no gateway schema yet" in done.stderr
    assert not (tmp_path / "gateway.db").exists()


def test_admin_create_with_a_bad_email_exits_2_and_creates_nobody(tmp_path, config):
    done = gateway_cli("admin", "create", "--config", str(config), "--name", "Root", "--email", "not-an-address",
                       cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "--email 'not-an-address' is not an email address" in done.stderr
    retry = gateway_cli("admin", "create", "--config", str(config), "--name", "Root", cwd=tmp_path)
    assert "employee 1," in retry.stderr  # the failed attempt left no employee behind


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://nope", "[database] url: unsupported database driver 'mysql'"),
        ("postgresql://gw:hunter2-secret@127.0.0.1:{port}/gw",
         "[database] url: cannot connect to the postgresql server at 127.0.0.1:{port}"),
    ],
)
def test_cli_with_a_bad_database_url_exits_2_naming_the_key(tmp_path, url, expected):
    port = _closed_port()
    config = write_config(tmp_path, url.format(port=port))
    for command in (["admin", "create", "--name", "Root"], ["token", "create", "--employee", "1"]):
        done = gateway_cli(*command[:2], "--config", str(config), *command[2:], cwd=tmp_path)
        assert done.returncode == 2
        assert expected.format(port=port) in done.stderr
        assert "Traceback" not in done.stderr and "hunter2-secret" not in done.stderr


def test_cli_with_a_missing_config_file_exits_2(tmp_path):
    done = gateway_cli("token", "create", "--config", str(tmp_path / "nope.toml"), "--employee", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot read configuration file" in done.stderr


def _closed_port() -> int:
    # A port nothing listens on: bound and released, so connecting is refused.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
