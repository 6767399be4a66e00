"""One real dnsmasq for the transport tests of the session, with the names `test_dns.py` resolves.

Ports are picked before dnsmasq starts (its SRV records name them); the tests bind them later.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.helpers.realservers import Dnsmasq, free_port, free_udp_port, start_dnsmasq, stop_dnsmasq


@dataclass(frozen=True)
class DnsWorld:
    """dnsmasq and the ports its SRV records point at."""

    server: Dnsmasq
    udp_first: int  # _sip._udp.pbx.test priority 10 → first.test
    udp_second: int  # _sip._udp.pbx.test priority 20 → second.test
    tcp_down: int  # _sip._tcp.pbx.test priority 10 → down.test (nothing listens)
    tcp_up: int  # _sip._tcp.pbx.test priority 20 → up.test; _sip._tcp.slow.test priority 20 → up.test
    tcp_hole: int  # _sip._tcp.slow.test priority 10 → hole.test (a test makes it swallow SYNs)


@pytest.fixture(scope="session")
def dns_world() -> Iterator[DnsWorld]:
    udp_first, udp_second, tcp_down, tcp_up = free_udp_port(), free_udp_port(), free_port(), free_port()
    tcp_hole = free_port()
    hosts = ["plain", "cached", "burst", "expiring", "lru1", "lru2", "lru3", "tcpname", "first", "second",
             "down", "up", "hole"]
    server = start_dnsmasq(
        *(f"--host-record={name}.test,127.0.0.1" for name in hosts),
        "--host-record=pbx.test,127.0.0.3",
        "--host-record=v6only.test,::1",
        f"--srv-host=_sip._udp.pbx.test,second.test,{udp_second},20,0",
        f"--srv-host=_sip._udp.pbx.test,first.test,{udp_first},10,0",
        f"--srv-host=_sip._tcp.pbx.test,down.test,{tcp_down},10,0",
        f"--srv-host=_sip._tcp.pbx.test,up.test,{tcp_up},20,0",
        f"--srv-host=_sip._tcp.slow.test,hole.test,{tcp_hole},10,0",
        f"--srv-host=_sip._tcp.slow.test,up.test,{tcp_up},20,0",
        "--srv-host=_sip._udp.noservice.test",
        "--host-record=noservice.test,127.0.0.1",
        ttl=60,
    )
    try:
        yield DnsWorld(server, udp_first, udp_second, tcp_down, tcp_up, tcp_hole)
    finally:
        stop_dnsmasq(server)
