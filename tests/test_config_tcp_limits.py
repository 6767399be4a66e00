"""The [sip] keys bounding TCP peers (issue 14 part 3): defaults, what they read, what a bad value says."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_config
from gateway.tcp_limits import TcpLimits

BASE = "[sip]\nlisten = ['tcp:127.0.0.1:5060']\n"


def test_limits_default_when_absent() -> None:
    limits = parse_config(BASE).sip.tcp
    assert limits == TcpLimits()
    assert (limits.max_connections, limits.max_connections_per_source, limits.idle_seconds,
            limits.max_message_bytes, limits.message_receive_seconds) == (1000, 100, 600.0, 65535, 10.0)


def test_limits_are_read() -> None:
    limits = parse_config(
        BASE + "tcp_max_connections = 50\ntcp_max_connections_per_source = 5\ntcp_idle_seconds = 90\n"
        "max_message_bytes = 8192\nmessage_receive_seconds = 2.5\n"
    ).sip.tcp
    assert limits == TcpLimits(50, 5, 90.0, 8192, 2.5)
    assert isinstance(limits.idle_seconds, float)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("tcp_max_connections = 0", "sip.tcp_max_connections must be a whole number from 1 to 1000000, such as 1000"),
        ("tcp_max_connections = 2.5", "sip.tcp_max_connections must be a whole number"),
        ("tcp_max_connections_per_source = true", "sip.tcp_max_connections_per_source must be a whole number"),
        ("tcp_idle_seconds = 0", "sip.tcp_idle_seconds must be a number of seconds from 0.1 to 86400, such as 600"),
        ("tcp_idle_seconds = '10s'", "sip.tcp_idle_seconds must be a number of seconds"),
        ("max_message_bytes = 100", "sip.max_message_bytes must be a whole number from 1024 to 16777216, such as 65535"),
        ("message_receive_seconds = -1", "sip.message_receive_seconds must be a number of seconds from 0.1"),
        ("tcp_max_connections = 10\ntcp_max_connections_per_source = 11",
         "sip.tcp_max_connections_per_source must not exceed sip.tcp_max_connections"),
    ],
)
def test_a_bad_limit_says_what_to_write(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + line + "\n")
    assert message in str(info.value)
