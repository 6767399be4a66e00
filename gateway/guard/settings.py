"""The [security] table: how the source guard counts, limits and bans (see `gateway.guard.policy`).

`read_security` validates the table and raises `SecuritySettingsError` with a message naming the key
and what to write; `gateway.config` turns it into a `ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BAN_ACTIONS = ("drop", "403")
#: User-Agent fragments (case-insensitive) of tools that scan and brute-force SIP servers; no phone
#: or PBX product ships with one of these names.
SCANNER_AGENTS: tuple[str, ...] = (
    "friendly-scanner", "sipvicious", "sipcli", "vaxsipuseragent", "sip-scan", "sundayddr", "iwar",
    "sivus", "pplsip", "siparmyknife",
)


class SecuritySettingsError(ValueError):
    """A [security] value cannot be used; the message says which key and what to write."""


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """Per-source limits. A rate of 0 turns that method's limit off."""

    #: Failed digest attempts from one address within `auth_window_seconds` that ban it.
    auth_failures: int = 10
    auth_window_seconds: float = 60.0
    ban_seconds: float = 600.0
    #: What a banned address gets: nothing ("drop", the default: no answer to learn from) or a 403.
    ban_action: str = "drop"
    #: New requests per second per address (token bucket holding `rate_burst` requests).
    invite_per_second: float = 10.0
    register_per_second: float = 10.0
    options_per_second: float = 10.0
    rate_burst: int = 50
    #: How long an address over a rate, or announcing a scanner user agent, is ignored.
    block_seconds: float = 60.0
    drop_scanner_agents: bool = True
    scanner_agents: tuple[str, ...] = SCANNER_AGENTS

    def rates(self) -> dict[str, float]:
        """The per-second limit of each limited method."""
        limits = {"INVITE": self.invite_per_second, "REGISTER": self.register_per_second,
                  "OPTIONS": self.options_per_second}
        return {method: rate for method, rate in limits.items() if rate > 0}


def read_security(table: dict[str, Any]) -> GuardSettings:
    """Validate the [security] table (every key optional)."""
    unknown = sorted(set(table) - set(GuardSettings.__dataclass_fields__))
    if unknown:
        known = ", ".join(sorted(GuardSettings.__dataclass_fields__))
        raise SecuritySettingsError(f"unknown key security.{unknown[0]} (known keys: {known})")
    defaults = GuardSettings()
    action = table.get("ban_action", defaults.ban_action)
    if action not in BAN_ACTIONS:
        raise SecuritySettingsError(
            f'security.ban_action = {action!r}: write "drop" (banned addresses get no answer) or "403"')
    drop_agents = table.get("drop_scanner_agents", defaults.drop_scanner_agents)
    if not isinstance(drop_agents, bool):
        raise SecuritySettingsError(f"security.drop_scanner_agents = {drop_agents!r}: write true or false")
    return GuardSettings(
        auth_failures=_whole(table, "auth_failures", defaults.auth_failures, 1),
        auth_window_seconds=_seconds(table, "auth_window_seconds", defaults.auth_window_seconds),
        ban_seconds=_seconds(table, "ban_seconds", defaults.ban_seconds),
        ban_action=str(action),
        invite_per_second=_rate(table, "invite_per_second", defaults.invite_per_second),
        register_per_second=_rate(table, "register_per_second", defaults.register_per_second),
        options_per_second=_rate(table, "options_per_second", defaults.options_per_second),
        rate_burst=_whole(table, "rate_burst", defaults.rate_burst, 1),
        block_seconds=_seconds(table, "block_seconds", defaults.block_seconds),
        drop_scanner_agents=drop_agents,
        scanner_agents=_agents(table, defaults.scanner_agents),
    )


def _whole(table: dict[str, Any], key: str, default: int, minimum: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SecuritySettingsError(f"security.{key} = {value!r}: write a whole number ≥ {minimum}, such as {default}")
    return value


def _seconds(table: dict[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 604_800:
        raise SecuritySettingsError(
            f"security.{key} = {value!r}: write a number of seconds from 1 to 604800 (a week), such as {default:g}")
    return float(value)


def _rate(table: dict[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SecuritySettingsError(
            f"security.{key} = {value!r}: write requests per second per address (0 turns the limit off), "
            f"such as {default:g}")
    return float(value)


def _agents(table: dict[str, Any], default: tuple[str, ...]) -> tuple[str, ...]:
    value = table.get("scanner_agents", list(default))
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise SecuritySettingsError(
            'security.scanner_agents must list User-Agent fragments such as ["friendly-scanner", "sipvicious"]')
    return tuple(item.strip().lower() for item in value)
