"""The source guard's rules G1-G3 with a hand-moved clock (sans-IO: address, outcome, now in)."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_config
from gateway.guard.policy import ADMIT, AUTH_FAILURES, DROP, RATE, REFUSE, SCANNER_AGENT, SourceGuard
from gateway.guard.settings import GuardSettings

ATTACKER, PHONE, TRUNK = "198.51.100.7", "192.0.2.10", "203.0.113.1"
T0 = 1000.0


def _guard(**settings: object) -> SourceGuard:
    return SourceGuard(GuardSettings(**settings), exempt=lambda host: host == TRUNK)  # type: ignore[arg-type]


def test_g1_ten_failures_in_the_window_ban_the_address_not_its_neighbours() -> None:
    guard = _guard(auth_failures=10, auth_window_seconds=60, ban_seconds=600)
    bans = [guard.auth_failed(ATTACKER, T0 + i) for i in range(10)]
    assert bans[:9] == [None] * 9
    assert bans[9] is not None and bans[9].rule == AUTH_FAILURES and bans[9].until == T0 + 9 + 600
    assert guard.screen("REGISTER", ATTACKER, "Yealink", T0 + 10).action == DROP
    assert guard.ignores(ATTACKER, T0 + 10)
    assert guard.screen("REGISTER", PHONE, "Yealink", T0 + 10).action == ADMIT
    assert not guard.ignores(PHONE, T0 + 10)
    assert guard.screen("REGISTER", ATTACKER, None, T0 + 9 + 600).action == ADMIT  # the ban ran out


def test_g1_failures_spread_wider_than_the_window_never_ban() -> None:
    guard = _guard(auth_failures=3, auth_window_seconds=60)
    assert [guard.auth_failed(PHONE, T0 + 31 * i) for i in range(10)] == [None] * 10
    assert guard.failed_attempts == 10


def test_g1_ban_answered_403_is_screened_not_ignored() -> None:
    guard = _guard(auth_failures=1, ban_action="403")
    guard.auth_failed(ATTACKER, T0)
    assert not guard.ignores(ATTACKER, T0 + 1)  # it must be parsed to be answered
    decision = guard.screen("INVITE", ATTACKER, None, T0 + 1)
    assert (decision.action, decision.status, decision.rule) == (REFUSE, 403, AUTH_FAILURES)
    assert guard.refused[AUTH_FAILURES] == 1


def test_g1_unban_lifts_the_block_and_forgets_the_failures() -> None:
    guard = _guard(auth_failures=2)
    guard.auth_failed(ATTACKER, T0)
    guard.auth_failed(ATTACKER, T0 + 1)
    assert [b.address for b in guard.blocks(T0 + 2)] == [ATTACKER]
    lifted = guard.unblock(ATTACKER, T0 + 2)
    assert lifted is not None and lifted.rule == AUTH_FAILURES
    assert guard.blocks(T0 + 2) == [] and guard.unblock(ATTACKER, T0 + 2) is None
    assert guard.auth_failed(ATTACKER, T0 + 3) is None  # a fresh count, not the 3rd of the old series


def test_g2_a_source_over_its_rate_is_blocked_then_refilled() -> None:
    guard = _guard(invite_per_second=10, rate_burst=5, block_seconds=30)
    decisions = [guard.screen("INVITE", ATTACKER, None, T0).action for _ in range(7)]
    assert decisions == [ADMIT] * 5 + [DROP] * 2
    assert guard.blocks_made[RATE] == 1 and guard.ignores(ATTACKER, T0 + 29.9)
    assert guard.screen("INVITE", PHONE, None, T0).action == ADMIT  # per source
    assert guard.screen("INVITE", ATTACKER, None, T0 + 30).action == ADMIT


def test_g2_methods_have_their_own_buckets_and_a_zero_rate_is_no_limit() -> None:
    guard = _guard(invite_per_second=1, register_per_second=0, rate_burst=1)
    assert guard.screen("INVITE", PHONE, None, T0).action == ADMIT
    assert guard.screen("OPTIONS", PHONE, None, T0).action == ADMIT
    assert all(guard.screen("REGISTER", PHONE, None, T0).action == ADMIT for _ in range(500))
    assert guard.screen("BYE", PHONE, None, T0).action == ADMIT


def test_g2_steady_traffic_under_the_rate_is_never_blocked() -> None:
    guard = _guard(options_per_second=2, rate_burst=2)
    assert all(guard.screen("OPTIONS", PHONE, None, T0 + i * 0.5).action == ADMIT for i in range(200))


def test_g3_scanner_user_agents_block_their_address_unless_turned_off() -> None:
    guard = _guard()
    decision = guard.screen("OPTIONS", ATTACKER, "friendly-scanner", T0)
    assert (decision.action, decision.rule) == (DROP, SCANNER_AGENT)
    assert decision.new_block is not None
    assert guard.screen("OPTIONS", ATTACKER, "Linphone/5.2", T0 + 1).new_block is None  # still blocked
    assert guard.screen("OPTIONS", PHONE, "Yealink SIP-T46U 108.86.0.20", T0).action == ADMIT
    assert _guard(drop_scanner_agents=False).screen("OPTIONS", ATTACKER, "friendly-scanner", T0).action == ADMIT


def test_trunks_are_never_limited_nor_banned() -> None:
    guard = _guard(invite_per_second=1, rate_burst=1, auth_failures=1)
    assert all(guard.screen("INVITE", TRUNK, None, T0).action == ADMIT for _ in range(100))
    assert guard.auth_failed(TRUNK, T0) is None


def test_memory_per_address_is_bounded() -> None:
    guard = SourceGuard(GuardSettings(rate_burst=1, auth_failures=5), max_sources=100)
    for i in range(1000):
        host = f"10.0.{i // 256}.{i % 256}"
        guard.screen("INVITE", host, None, T0)
        guard.screen("INVITE", host, None, T0)  # blocked
        guard.auth_failed(host, T0)
    assert len(guard.blocks(T0)) <= 100


@pytest.mark.parametrize(("text", "message"), [
    ('ban_action = "reject"', "security.ban_action"),
    ("auth_failures = 0", "security.auth_failures"),
    ("invite_per_second = -1", "security.invite_per_second"),
    ("ban_seconds = 0", "security.ban_seconds"),
    ('drop_scanner_agents = "yes"', "security.drop_scanner_agents"),
    ("scanner_agents = [1]", "security.scanner_agents"),
    ("bans = 3", "unknown key security.bans"),
])
def test_security_table_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f'[sip]\nlisten = ["udp:127.0.0.1:5060"]\n[security]\n{text}\n')


def test_security_table_defaults_and_values() -> None:
    config = parse_config('[sip]\nlisten = ["udp:127.0.0.1:5060"]\nnode_id = "gw-a"\n'
                          '[security]\nauth_failures = 5\nban_action = "403"\nscanner_agents = ["Evil"]\n')
    assert config.sip.node_id == "gw-a"
    assert (config.security.auth_failures, config.security.ban_action) == (5, "403")
    assert config.security.scanner_agents == ("evil",)
    default = parse_config('[sip]\nlisten = ["udp:127.0.0.1:5060"]\n')
    assert default.security == GuardSettings() and len(default.sip.node_id) == 8
    with pytest.raises(ConfigError, match="sip.node_id"):
        parse_config('[sip]\nlisten = ["udp:127.0.0.1:5060"]\nnode_id = "a.b"\n')
