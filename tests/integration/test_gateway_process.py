"""`gateway run` as a process: it becomes healthy, SIGTERM stops it cleanly (exit 0), its start-up
hints work as printed, and a database it cannot open stops it with exit 2 and the key to fix."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import HOST, GatewayProcess, free_port, wait_healthy


def test_sigterm_stops_the_gateway_cleanly(tmp_path: Path) -> None:
    sip_port, admin_port = free_port(), free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[sip]\nlisten = ["udp:{HOST}:{sip_port}", "tcp:{HOST}:{sip_port}"]\n[admin]\nlisten = "{HOST}:{admin_port}"\n'
    )
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    running = GatewayProcess(process, sip_port, admin_port, 0, 0, log_path)
    try:
        wait_healthy(running, time.monotonic() + 20)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, running.log()
        assert "gateway stopped" in running.log()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _start(command: list[str], config: Path, directory: Path, admin_port: int) -> GatewayProcess:
    log_path = directory / f"gateway-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*command, "run", "--config", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT, cwd=directory, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    running = GatewayProcess(process, 0, admin_port, 0, 0, log_path)
    try:
        wait_healthy(running, time.monotonic() + 20)
    except BaseException:
        _stop(process)
        raise
    return running


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _demo_config(directory: Path, sip_port: int, admin_port: int) -> Path:
    config = directory / "demo.toml"
    config.write_text(f'[sip]\nlisten = ["udp:{HOST}:{sip_port}"]\n[admin]\nlisten = "{HOST}:{admin_port}"\n'
                      f'[database]\nurl = "sqlite+aiosqlite:///{directory}/gateway.db"\nseed_demo = true\n')
    return config


def _line_after(text: str, marker: str) -> str:
    lines = [line for line in text.splitlines() if marker in line]
    assert lines, f"no line with {marker!r} in:\n{text}"
    return lines[-1].split(marker, 1)[1].strip()


def test_demo_banner_commands_work_as_printed(tmp_path: Path) -> None:
    """The hints printed at start-up name the CLI as it was started (.venv/bin/gateway is not on PATH)
    and paste as they are: `simulate call` on the first start, `token create` after a restart."""
    script = Path(sys.executable).with_name("gateway")
    assert script.is_file(), "the venv's gateway script (pip install -e .) is missing"
    sip_port, admin_port = free_port(), free_port()
    config = _demo_config(tmp_path, sip_port, admin_port)
    first = _start([str(script)], config, tmp_path, admin_port)
    try:
        simulate = _line_after(first.log(), "try: ")
    finally:
        _stop(first.process)
    assert simulate.startswith(f"{script} simulate call --config {config} ")
    planned = subprocess.run(shlex.split(simulate), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["action"] == "create_lead"

    again = _start([str(script)], config, tmp_path, admin_port)
    try:
        hint = _line_after(again.log(), "need an admin API token? ")
        assert hint == f"{script} token create --config {config} --employee 1"
        issued = subprocess.run(shlex.split(hint), cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert issued.returncode == 0, issued.stderr
        request = urllib.request.Request(f"http://{HOST}:{admin_port}/me",
                                         headers={"Authorization": f"Bearer {issued.stdout.strip()}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.loads(answer.read())["is_admin"] is True
        assert issued.stdout.strip() not in again.log()  # the new token is not in the gateway's output
    finally:
        _stop(again.process)


def test_t2_new_database_without_demo_says_how_to_get_the_first_admin_token(tmp_path: Path) -> None:
    """seed_demo = false and a new database: no employee, so every API route is 401; the gateway says
    which command creates the first administrator, and that command's token works on the running API."""
    script = Path(sys.executable).with_name("gateway")
    sip_port, admin_port = free_port(), free_port()
    config = _demo_config(tmp_path, sip_port, admin_port)
    config.write_text(config.read_text().replace("seed_demo = true", "seed_demo = false"))
    running = _start([str(script)], config, tmp_path, admin_port)
    try:
        hint = _line_after(running.log(), "no administrator yet: ")
        command = hint.split(" creates one")[0].replace("NAME", "'First Admin'")
        assert command == f"{script} admin create --config {config} --name 'First Admin'"
        created = subprocess.run(shlex.split(command), cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        request = urllib.request.Request(f"http://{HOST}:{admin_port}/me",
                                         headers={"Authorization": f"Bearer {created.stdout.strip()}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.loads(answer.read())["name"] == "First Admin"
    finally:
        _stop(running.process)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://nope", "[database] url: unsupported database driver 'mysql'"),
        ("postgresql://gw:hunter2-secret@127.0.0.1:{port}/gw",
         "[database] url: cannot connect to the postgresql server at 127.0.0.1:{port} as gw"),
        ("postgresql+asyncpg://gw:hunter2-secret@127.0.0.1:{port}/gw",
         "[database] url: cannot connect to the postgresql server at 127.0.0.1:{port} as gw"),
        ("sqlite+aiosqlite:///{missing}/gateway.db", "[database] url: cannot open the SQLite database"),
        ("postgresql://gw:hunter2-secret@db:port/gw", "[database] url: not a valid database URL"),
    ],
)
def test_bad_database_url_exits_2_naming_the_key_without_the_password(tmp_path: Path, url: str, expected: str) -> None:
    port, missing = _closed_port(), tmp_path / "no-such-directory"
    config = tmp_path / "gateway.toml"
    config.write_text(f'[sip]\nlisten = ["udp:{HOST}:{free_port()}"]\n[admin]\nlisten = "{HOST}:{free_port()}"\n'
                      f'[database]\nurl = "{url.format(port=port, missing=missing)}"\n')
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config", str(config)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert expected.format(port=port) in done.stderr
    assert "Traceback" not in done.stderr and "hunter2-secret" not in done.stderr + done.stdout
