"""The real gateway process routes to host names found through a real dnsmasq (RFC 3263 §4.2).

Static routes name `pbx.test` without a port: the gateway asks dnsmasq for `_sip._udp.pbx.test` /
`_sip._tcp.pbx.test`, whose SRV records point at SIPp callees on this machine. A route to a name that
does not exist answers the caller 503 at once (RFC 3263 §4.3), not 408 after Timer B.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.realservers import Dnsmasq, start_dnsmasq, stop_dnsmasq
from tests.integration.conftest import HOST, GatewayProcess, Sipp, free_port, wait_exit, wait_healthy

OK = 0


@dataclass
class DnsGateway:
    """The gateway, its dnsmasq, and the ports the SRV records send calls to."""

    gateway: GatewayProcess
    dns: Dnsmasq
    udp_callee_port: int
    tcp_callee_port: int


def _config(path: Path, sip_port: int, admin_port: int, dns_port: int) -> None:
    path.write_text(f"""
log_level = "INFO"
[sip]
listen = ["udp:{HOST}:{sip_port}", "tcp:{HOST}:{sip_port}"]
dns_servers = ["{HOST}:{dns_port}"]
dns_timeout = 2.0
[[sip.static_routes]]
id = "pbx-by-srv"
match = "^2\\\\d{{3}}$"
target = "sip:pbx.test"
[[sip.static_routes]]
id = "pbx-by-srv-tcp"
match = "^3\\\\d{{3}}$"
target = "sip:pbx.test;transport=tcp"
[[sip.static_routes]]
id = "nowhere"
match = "^4\\\\d{{3}}$"
target = "sip:nowhere.test"
[[sip.trunks]]
host = "{HOST}"
[admin]
listen = "{HOST}:{admin_port}"
[database]
url = "sqlite+aiosqlite:///{path.parent}/gateway.db"
""")


@pytest.fixture(scope="module")
def dns_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsGateway]:
    udp_callee_port, tcp_callee_port = free_port(), free_port()
    dns = start_dnsmasq(
        "--host-record=callee.test,127.0.0.1",
        f"--srv-host=_sip._udp.pbx.test,callee.test,{udp_callee_port},10,0",
        f"--srv-host=_sip._tcp.pbx.test,callee.test,{tcp_callee_port},10,0",
    )
    directory = tmp_path_factory.mktemp("dns-gateway")
    sip_port, admin_port = free_port(), free_port()
    config = directory / "gateway.toml"
    _config(config, sip_port, admin_port, dns.port)
    log_path = directory / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=directory, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    gateway = GatewayProcess(process, sip_port, admin_port, udp_callee_port, tcp_callee_port, log_path)
    try:
        wait_healthy(gateway, time.monotonic() + 20)
        yield DnsGateway(gateway, dns, udp_callee_port, tcp_callee_port)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stop_dnsmasq(dns)


def _gw(world: DnsGateway) -> str:
    return f"{HOST}:{world.gateway.sip_port}"


def test_static_route_to_a_name_reaches_the_srv_target(dns_gateway: DnsGateway, sipp: Sipp) -> None:
    callee = sipp.start("uas_answer.xml", port=dns_gateway.udp_callee_port)
    caller = sipp.run("uac_call.xml", "-s", "2000", _gw(dns_gateway))
    assert caller.returncode == OK, sipp.errors() + dns_gateway.gateway.log()[-3000:]
    assert wait_exit(callee) == OK, sipp.errors()
    assert dns_gateway.dns.queries("_sip._udp.pbx.test", "SRV") >= 1


def test_tcp_static_route_to_a_name_reaches_the_tcp_srv_target(dns_gateway: DnsGateway, sipp: Sipp) -> None:
    callee = sipp.start("uas_answer.xml", "-t", "t1", port=dns_gateway.tcp_callee_port)
    caller = sipp.run("uac_call.xml", "-s", "3000", _gw(dns_gateway))
    assert caller.returncode == OK, sipp.errors() + dns_gateway.gateway.log()[-3000:]
    assert wait_exit(callee) == OK, sipp.errors()
    assert dns_gateway.dns.queries("_sip._tcp.pbx.test", "SRV") >= 1


def test_route_to_a_name_that_does_not_exist_answers_503(dns_gateway: DnsGateway, sipp: Sipp) -> None:
    # SIPp gives up after 20 s: a 408 after Timer B (32 s) could not pass, only the 503 at once can.
    caller = sipp.run("uac_expect_503.xml", "-s", "4000", _gw(dns_gateway))
    assert caller.returncode == OK, sipp.errors() + dns_gateway.gateway.log()[-3000:]
    assert dns_gateway.dns.queries("nowhere.test", "A") >= 1
