"""The real gateway as a subprocess (`gateway run --config`) and SIPp processes against it.

Everything binds 127.0.0.1 on free ports; every process started here is stopped by its PID.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ports

if TYPE_CHECKING:
    from tests.integration.phones import Phones
    from tests.integration.trunk import Trunk

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "docker" / "sipp"
HOST = "127.0.0.1"
USER_1001_PASSWORD = "it-secret-1001"


def free_port() -> int:
    """A port free for both UDP and TCP right now (SIP listens on both with one number), outside the
    kernel's ephemeral range and never the same twice in one session (tests/helpers/ports.py)."""
    return ports.free_port()


def free_media_port() -> int:
    """A base port for SIPp's media (`-mp`): SIPp binds it and the next three (audio and video RTP, and
    their RTCP) over UDP, so all four must be free — one free port alone let SIPp fail at start now and
    then with "Unable to bind video RTP socket"."""
    return ports.free_port(tcp=False, span=4)


@dataclass
class GatewayProcess:
    """The running gateway and the ports the tests need."""

    process: subprocess.Popen[bytes]
    sip_port: int
    admin_port: int
    trunk_port: int  # where the static route "2xxx" sends calls (a SIPp uas per test)
    tcp_trunk_port: int  # where "3xxx" goes, over TCP
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def write_config(
    path: Path, sip_port: int, admin_port: int, trunk_port: int, tcp_trunk_port: int, *, extra_sip: str = "",
    database_url: str | None = None, extra: str = "",
) -> None:
    """The integration gateway's config; `extra_sip` adds lines to its [sip] table; `database_url`
    replaces the SQLite file beside the config (e.g. a PostgreSQL of the test's own); `extra` adds tables."""
    database_url = database_url or f"sqlite+aiosqlite:///{path.parent}/gateway.db"
    path.write_text(f"""
log_level = "INFO"
[sip]
listen = ["udp:{HOST}:{sip_port}", "tcp:{HOST}:{sip_port}"]
realm = "it.test"
{extra_sip}
[[sip.static_routes]]
id = "extensions"
match = "^1\\\\d{{3}}$"
target = "registered"
[[sip.static_routes]]
id = "trunk"
match = "^2\\\\d{{3}}$"
target = "sip:{HOST}:{trunk_port}"
[[sip.static_routes]]
id = "tcp-trunk"
match = "^3\\\\d{{3}}$"
target = "sip:{HOST}:{tcp_trunk_port};transport=tcp"
[[sip.users]]
username = "1001"
password = "{USER_1001_PASSWORD}"
[[sip.trunks]]
host = "{HOST}"
[admin]
listen = "{HOST}:{admin_port}"
[database]
url = "{database_url}"
seed_demo = true
{extra}
""")


def wait_healthy(gateway: GatewayProcess, deadline: float) -> None:
    url = f"http://{HOST}:{gateway.admin_port}/healthz"
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"gateway exited with {gateway.process.returncode}:\n{gateway.log()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"gateway not healthy in time:\n{gateway.log()}")


def start_gateway(directory: Path, *, extra_sip: str = "", log_name: str = "gateway.log",
                  healthy_within: float = 30.0, database_url: str | None = None, extra: str = "") -> GatewayProcess:
    """A gateway process on fresh ports with its config (and SQLite file, unless `database_url` names
    another database) in `directory`, once healthy."""
    ports = free_port(), free_port(), free_port(), free_port()
    config = directory / "gateway.toml"
    write_config(config, *ports, extra_sip=extra_sip, database_url=database_url, extra=extra)
    return _spawn_gateway(directory, ports, log_name, healthy_within)


def restart_gateway(gateway: GatewayProcess, log_name: str, healthy_within: float = 30.0) -> GatewayProcess:
    """The same gateway started again (its config, ports and working directory) once the old process is gone."""
    if gateway.process.poll() is None:
        raise RuntimeError(f"gateway PID {gateway.process.pid} still runs")
    ports = gateway.sip_port, gateway.admin_port, gateway.trunk_port, gateway.tcp_trunk_port
    return _spawn_gateway(gateway.log_path.parent, ports, log_name, healthy_within)


def _spawn_gateway(directory: Path, ports: tuple[int, int, int, int], log_name: str,
                   healthy_within: float) -> GatewayProcess:
    config = directory / "gateway.toml"
    log_path = directory / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=directory, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    running = GatewayProcess(process, *ports, log_path)
    try:
        wait_healthy(running, time.monotonic() + healthy_within)
    except BaseException:
        stop_gateway(running)
        raise
    return running


def stop_gateway(gateway: GatewayProcess, timeout: float = 15.0) -> int:
    """SIGTERM (a clean stop: registrations are flushed), then the exit code; killed if it hangs."""
    if gateway.process.poll() is None:
        gateway.process.send_signal(signal.SIGTERM)
        try:
            gateway.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            gateway.process.kill()
            gateway.process.wait()
    return gateway.process.returncode


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway for the whole session."""
    running = start_gateway(tmp_path_factory.mktemp("gateway"))
    try:
        yield running
    finally:
        stop_gateway(running)


class Sipp:
    """Starts SIPp processes with their own ports; stops what it started."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen[bytes]] = []

    def command(self, scenario: str, *args: str, port: int | None = None, calls: int = 1) -> list[str]:
        scenario_args = ["-sn", scenario[3:]] if scenario.startswith("sn:") else ["-sf", str(SCENARIOS / scenario)]
        return [
            "sipp", *scenario_args, "-i", HOST, "-p", str(port or free_port()), "-mp", str(free_media_port()),
            "-cp", str(free_port()), "-nostdin", "-m", str(calls), "-timeout", "20s", "-timeout_error",
            "-trace_err", "-error_file", str(self.directory / f"{scenario.replace(':', '_')}-{time.monotonic_ns()}.err"),
            *args,
        ]

    def start(self, scenario: str, *args: str, port: int | None = None, calls: int = 1) -> subprocess.Popen[bytes]:
        """A background SIPp (a callee waiting for calls)."""
        process = subprocess.Popen(
            self.command(scenario, *args, port=port, calls=calls),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.directory,
        )
        self.started.append(process)
        time.sleep(0.2)  # let it bind before anyone calls it (a late bind costs a retransmission)
        return process

    def run(self, scenario: str, *args: str, port: int | None = None, calls: int = 1) -> subprocess.CompletedProcess[bytes]:
        """A foreground SIPp (a caller); returns when it is done."""
        return subprocess.run(
            self.command(scenario, *args, port=port, calls=calls),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.directory, timeout=40,
        )

    def errors(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in self.directory.glob("*.err"))

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Sipp]:
    runner = Sipp(tmp_path)
    yield runner
    runner.stop_all()


def wait_exit(process: subprocess.Popen[bytes], timeout: float = 25) -> int:
    """The exit code of a background SIPp, killing it if it hangs."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -9


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Phones]:
    """Employees' phones for one test (tests/integration/phones.py), all stopped at its end."""
    from tests.integration.phones import Phones  # here: phones.py imports this module

    book = Phones(tmp_path)
    yield book
    book.stop_all()


@pytest.fixture
def trunk(tmp_path: Path) -> Iterator[Trunk]:
    """The trunk side for one test (tests/integration/trunk.py); a run still going is stopped at its end."""
    from tests.integration.trunk import Trunk  # here: trunk.py imports this module

    side = Trunk(tmp_path)
    yield side
    side.stop_all()
