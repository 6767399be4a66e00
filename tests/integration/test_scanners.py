"""Issue 14 item 1: SIPVicious (PyPI `sipvicious`) against a real gateway process on loopback.

sipvicious 0.3.8's svwar and svcrack ignore their -b option, so they always send from 127.0.0.1 (the
source the kernel picks towards it); the honest phone binds 127.0.0.3 and svmap 127.0.0.5. These
gateways trust no trunk, so every loopback address is an ordinary untrusted source.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sip.auth import build_authorization
from gateway.sip.message import Response
from gateway.sip.parser import parse_message
from tests.integration.conftest import (
    HOST,
    USER_1001_PASSWORD,
    GatewayProcess,
    free_port,
    stop_gateway,
    wait_healthy,
)
from tests.integration.live_kit import Admin

TOOLS = Path(sys.executable).parent
SCANNER = "127.0.0.1"  # where svwar and svcrack send from (see above)
PHONE = "127.0.0.3"
# Extensions 1001 (configured password) and 1002 (the demo's HA1 in the database) are real.
RANGE = "1000-1010"

pytestmark = pytest.mark.skipif(shutil.which(str(TOOLS / "sipvicious_svwar")) is None,
                                reason="sipvicious is not installed (pip install -e '.[dev]')")


def _start(directory: Path, security: str) -> GatewayProcess:
    sip_port, admin_port = free_port(), free_port()
    config = directory / "gateway.toml"
    config.write_text(f"""
log_level = "INFO"
[sip]
listen = ["udp:{HOST}:{sip_port}"]
realm = "it.test"
[[sip.static_routes]]
id = "extensions"
match = "^1\\\\d{{3}}$"
target = "registered"
[[sip.users]]
username = "1001"
password = "{USER_1001_PASSWORD}"
[admin]
listen = "{HOST}:{admin_port}"
[database]
url = "sqlite+aiosqlite:///{directory}/gateway.db"
seed_demo = true
[security]
{security}
""")
    log_path = directory / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    running = GatewayProcess(process, sip_port, admin_port, 0, 0, log_path)
    try:
        wait_healthy(running, time.monotonic() + 30)
    except BaseException:
        stop_gateway(running)
        raise
    return running


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """Scanner user agents let through (sipvicious cannot change its own), REGISTERs not rate-limited:
    what stops svcrack here is the failed-attempt ban alone."""
    running = _start(tmp_path_factory.mktemp("scanned"),
                     "drop_scanner_agents = false\nregister_per_second = 0\nauth_failures = 10")
    try:
        yield running
    finally:
        stop_gateway(running)


@pytest.fixture
def admin(scanned: GatewayProcess) -> Admin:
    admin = Admin(scanned)
    admin.call("DELETE", f"/security/bans/{SCANNER}")  # each test starts with the scanner unbanned
    return admin


def _tool(name: str, *args: str, timeout: float = 60) -> str:
    done = subprocess.run([str(TOOLS / f"sipvicious_{name}"), *args], capture_output=True, text=True,
                          timeout=timeout)
    return done.stdout + done.stderr


def _metric(gateway: GatewayProcess, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(f"http://{HOST}:{gateway.admin_port}/metrics", timeout=5) as answer:
        body = answer.read().decode()
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", body, re.MULTILINE)
    assert match, f"{name}{labels} missing from /metrics"
    return float(match.group(1))


def _register(gateway: GatewayProcess, source: str, user: str, password: str, timeout: float = 2.0) -> int | None:
    """One REGISTER with digest from `source` (bound there); the final status, None without an answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        port = sock.getsockname()[1]
        call_id, uri = secrets.token_hex(8), f"sip:{HOST}:{gateway.sip_port}"

        def send(cseq: int, authorization: str | None) -> Response | None:
            lines = [f"REGISTER {uri} SIP/2.0", f"Via: SIP/2.0/UDP {source}:{port};branch=z9hG4bK{secrets.token_hex(6)}",
                     "Max-Forwards: 70", f"From: <sip:{user}@it.test>;tag={secrets.token_hex(4)}",
                     f"To: <sip:{user}@it.test>", f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER",
                     f"Contact: <sip:{user}@{source}:{port}>", "Expires: 60", "User-Agent: honest-phone/1.0"]
            if authorization:
                lines.append(f"Authorization: {authorization}")
            sock.sendto(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(), (HOST, gateway.sip_port))
            try:
                answer = parse_message(sock.recv(65535))
            except TimeoutError:
                return None
            assert isinstance(answer, Response)
            return answer

        first = send(1, None)
        if first is None or first.status != 401:
            return None if first is None else first.status
        challenge = first.get("WWW-Authenticate")
        assert challenge is not None
        second = send(2, build_authorization(challenge, method="REGISTER", uri=uri, username=user, password=password,
                                             cnonce=secrets.token_hex(4)))
        return None if second is None else second.status


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_finds_no_extension(scanned: GatewayProcess, admin: Admin, method: str) -> None:
    """--force: past svwar's own sanity check (which already gives up: unknown users are challenged)."""
    output = _tool("svwar", "-e", RANGE, "-m", method, "--force", "-p", str(scanned.sip_port),
                   "--maximumtime", "3", HOST)
    assert "found nothing" in output, output
    assert not re.search(r"\|\s*100[0-9]\s*\|", output), output  # no row of an extension table


def test_register_answers_for_real_and_unknown_users_have_one_shape(scanned: GatewayProcess, admin: Admin) -> None:
    """What svwar compares: status and header fields (names, order), for a configured user, a database
    user and a user that does not exist."""
    shapes = set()
    for user in ("1001", "1002", "1009"):
        answers = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((PHONE, 0))
            sock.settimeout(2)
            port = sock.getsockname()[1]
            sock.sendto((f"REGISTER sip:{HOST} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE}:{port};branch=z9hG4bK{user}x\r\n"
                         f"From: <sip:{user}@it.test>;tag=a\r\nTo: <sip:{user}@it.test>\r\nCall-ID: shape-{user}\r\n"
                         f"CSeq: 1 REGISTER\r\nContact: <sip:{user}@{PHONE}:{port}>\r\nContent-Length: 0\r\n\r\n").encode(),
                        (HOST, scanned.sip_port))
            answers.append(parse_message(sock.recv(65535)))
        answer = answers[0]
        assert isinstance(answer, Response)
        shapes.add((answer.status, tuple(name for name, _ in answer.headers)))
    assert len(shapes) == 1, shapes


def test_svcrack_is_banned_before_20_guesses(scanned: GatewayProcess, admin: Admin) -> None:
    failures_before = _metric(scanned, "gateway_security_auth_failures_total")
    started = time.monotonic()
    output = _tool("svcrack", "-u", "1001", "-r", "1-200", "-p", str(scanned.sip_port), "--maximumtime", "3", HOST)
    guesses = _metric(scanned, "gateway_security_auth_failures_total") - failures_before
    dropped = _metric(scanned, "gateway_security_requests_dropped_total", '{rule="auth-failures"}')
    print(f"svcrack: {guesses:.0f} guesses checked before the ban, {dropped:.0f} requests dropped after it, "
          f"{time.monotonic() - started:.1f} s")
    assert "password for 1001" not in output, output
    assert 1 <= guesses < 20
    assert dropped > 0  # svcrack kept guessing into the ban
    bans = admin.get("/security/bans")
    assert [(ban["address"], ban["rule"]) for ban in bans] == [(SCANNER, "auth-failures")]
    # The user's own phone, elsewhere, registers during the ban; the scanner's address gets nothing.
    assert _register(scanned, PHONE, "1001", USER_1001_PASSWORD) == 200
    assert _register(scanned, SCANNER, "1001", USER_1001_PASSWORD, timeout=1.0) is None
    lifted = admin.expect(200, "DELETE", f"/security/bans/{SCANNER}")
    assert lifted["rule"] == "auth-failures"
    assert _register(scanned, SCANNER, "1001", USER_1001_PASSWORD) == 200
    admin.expect(404, "DELETE", f"/security/bans/{SCANNER}")
    admin.expect(422, "DELETE", "/security/bans/not-an-address")


def test_svmap_sees_the_gateway(scanned: GatewayProcess, admin: Admin) -> None:
    output = _tool("svmap", "-b", "127.0.0.5", "-p", str(scanned.sip_port), HOST, timeout=30)
    assert f"{HOST}:{scanned.sip_port}" in output, output


def test_scanner_user_agents_are_dropped_by_default(tmp_path: Path) -> None:
    gateway = _start(tmp_path, "")
    try:
        output = _tool("svmap", "-b", "127.0.0.6", "-p", str(gateway.sip_port), HOST, timeout=30)
        assert f"{HOST}:{gateway.sip_port}" not in output, output
        assert _metric(gateway, "gateway_security_blocks_total", '{rule="scanner-agent"}') == 1
        assert _register(gateway, PHONE, "1001", USER_1001_PASSWORD) == 200
    finally:
        stop_gateway(gateway)
