"""Typed gateway settings, read from a TOML file.

Every problem in the file is reported as a `ConfigError` whose message names the key and says what
to write instead; nothing is silently defaulted from a wrong value.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.guard.settings import GuardSettings, SecuritySettingsError, read_security
from gateway.tcp_limits import TCP_LIMIT_KEYS, TcpLimitError, TcpLimits, tcp_limits

TRANSPORTS = ("udp", "tcp")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./gateway.db"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and what to fix."""


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """One SIP listening socket: ``udp:127.0.0.1:5060``."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """Request-URI user regex → a SIP URI target, or ``registered`` for the registrar's bindings."""

    rule_id: str
    pattern: re.Pattern[str]
    target: str


@dataclass(frozen=True, slots=True)
class SipUser:
    """An employee's phone account (REGISTER and, from untrusted sources, INVITE authentication)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Trunk:
    """A trusted source whose INVITEs are accepted without digest authentication."""

    host: str
    port: int | None = None


@dataclass(frozen=True, slots=True)
class SipConfig:
    """The [sip] table."""

    listen: tuple[ListenAddress, ...]
    static_routes: tuple[StaticRoute, ...] = ()
    users: tuple[SipUser, ...] = ()
    trunks: tuple[Trunk, ...] = ()
    realm: str = "gateway"
    nonce_secret: bytes = field(default=b"", repr=False)
    nonce_max_age: float = 300.0
    # This node's name inside its nonces: another node sharing the secret answers them stale.
    node_id: str = ""
    # Offered in this order (RFC 8760 §2.4: a client answers the first it supports). MD5 alone by
    # default: some phones (and SIPp) take the first challenge whatever its algorithm.
    digest_algorithms: tuple[str, ...] = ("MD5",)
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    max_contacts_per_aor: int = 10
    # How a UDP phone whose Contact names another host than its REGISTER came from (NAT) is
    # called: "source" sends to where the REGISTER came from, "contact" to the Contact as written.
    nat_contacts: str = "source"
    # Any answered call lasting longer is ended with a BYE on both legs; 0 = no limit.
    max_call_seconds: int = 0
    # How long a blind transfer's target rings, then the transferring employee again when nobody
    # answered (SPEC R5), in seconds.
    transfer_ring_time_s: int = 20
    # How long a number's call may wait for the caller's CRM knowledge before it rings the number's
    # queue group without it (the CRM outcome is then decided later).
    routing_budget_ms: int = 300
    # Where host-name targets are looked up (RFC 3263): (ip, port) pairs; empty = /etc/resolv.conf.
    dns_servers: tuple[tuple[str, int], ...] = ()
    dns_timeout: float = 2.0  # seconds for one whole lookup; a name that takes longer fails the call (503)
    tcp: TcpLimits = TcpLimits()  # connection caps, idle and message limits (tcp_* and message_* keys)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The [admin] table: where the HTTP admin API listens."""

    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """The [database] table."""

    url: str = DEFAULT_DATABASE_URL
    seed_demo: bool = False  # seed the demo employees, queue group and number into a new database
    # CRM writes (the outbox) applied by a worker process of its own, on another core than SIP; false: in
    # the gateway's process (one process to watch, at a lower call rate).
    outbox_process: bool = True


@dataclass(frozen=True, slots=True)
class MailConfig:
    """The [mail] table: the mail bridge's timers and the default SMTP relay (a mailbox may name its own)."""

    enabled: bool = True  # `gateway run` starts the mail bridge
    smtp_host: str = ""  # empty: no default relay, mailboxes must name one to send
    smtp_port: int = 587
    smtp_tls: str = "starttls"  # tls | starttls | none
    smtp_login: str = ""
    smtp_password: str = field(default="", repr=False)
    poll_seconds: int = 60  # the periodic poll behind IDLE (and of folders IDLE does not watch)
    idle_seconds: int = 600  # IDLE is renewed before servers drop it (RFC 2177: at most 29 minutes)
    retry_max_seconds: int = 300  # back-off cap for a mailbox whose server refuses us
    timeout_seconds: int = 30  # one IMAP/SMTP command


@dataclass(frozen=True, slots=True)
class JournalConfig:
    """The [journal] table: the call journal's crash-safe spool (gateway.calls.spool)."""

    spool_dir: str = ""  # empty: one per database: <SQLite file>-spool, else ./var/call-spool-<host>-<database>
    memory_calls: int = 1000  # calls whose writes may wait in memory; beyond, they wait in the spool only
    spool_segment_kb: int = 4096  # a new spool file past this size; files whose calls are all written go


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole configuration file."""

    sip: SipConfig
    admin: AdminConfig = AdminConfig()
    database: DatabaseConfig = DatabaseConfig()
    log_level: str = "INFO"
    mail: MailConfig = MailConfig()
    security: GuardSettings = GuardSettings()
    journal: JournalConfig = JournalConfig()


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "<config>") -> GatewayConfig:
    """Validate TOML text into a `GatewayConfig`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    _reject_unknown(data, {"sip", "admin", "database", "log_level", "mail", "security", "journal"}, "")
    sip = data.get("sip")
    if not isinstance(sip, dict):
        raise ConfigError(f"{source}: missing [sip] table (add [sip] with listen = [\"udp:127.0.0.1:5060\"])")
    log_level = _string(data, "log_level", "", "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log_level must be one of DEBUG, INFO, WARNING, ERROR")
    return GatewayConfig(
        sip=_sip(sip),
        admin=_admin(_table(data, "admin")),
        database=_database(_table(data, "database")),
        log_level=log_level,
        mail=_mail(_table(data, "mail")),
        security=_security(_table(data, "security")),
        journal=_journal(_table(data, "journal")),
    )


def _journal(table: dict[str, Any]) -> JournalConfig:
    _reject_unknown(table, set(JournalConfig.__dataclass_fields__), "journal.")
    spool_dir = _string(table, "spool_dir", "journal.", "")
    if "\0" in spool_dir:
        raise ConfigError("journal.spool_dir must be a directory path (it contains a NUL character)")
    return JournalConfig(
        spool_dir=spool_dir,
        memory_calls=_int(table, "memory_calls", "journal.", 1000, minimum=1),
        spool_segment_kb=_int(table, "spool_segment_kb", "journal.", 4096, minimum=16),
    )


def _security(table: dict[str, Any]) -> GuardSettings:
    try:
        return read_security(table)
    except SecuritySettingsError as error:
        raise ConfigError(str(error)) from None


def _sip(table: dict[str, Any]) -> SipConfig:
    _reject_unknown(
        table,
        {"listen", "static_routes", "users", "trunks", "realm", "nonce_secret", "nonce_max_age", "node_id",
         "digest_algorithms", "min_expires", "max_expires", "default_expires", "max_contacts_per_aor", "nat_contacts",
         "max_call_seconds", "routing_budget_ms", "transfer_ring_time_s",
         "dns_servers", "dns_timeout"} | TCP_LIMIT_KEYS,
        "sip.",
    )
    listen = table.get("listen")
    if not isinstance(listen, list) or not listen:
        raise ConfigError('sip.listen must be a non-empty list such as ["udp:127.0.0.1:5060"]')
    addresses = tuple(_listen_address(item, f"sip.listen[{i}]") for i, item in enumerate(listen))
    secret_text = _string(table, "nonce_secret", "sip.", "")
    min_expires = _int(table, "min_expires", "sip.", 60, minimum=1)
    max_expires = _int(table, "max_expires", "sip.", 7200, minimum=min_expires)
    default_expires = _int(table, "default_expires", "sip.", 3600, minimum=min_expires)
    if default_expires > max_expires:
        raise ConfigError("sip.default_expires must not exceed sip.max_expires")
    users = tuple(_user(item, f"sip.users[{i}]") for i, item in enumerate(_list(table, "users", "sip.")))
    names = [user.username for user in users]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"sip.users: username {duplicates[0]!r} is defined more than once")
    return SipConfig(
        listen=addresses,
        static_routes=tuple(
            _route(item, f"sip.static_routes[{i}]", i)
            for i, item in enumerate(_list(table, "static_routes", "sip."))
        ),
        users=users,
        trunks=tuple(_trunk(item, f"sip.trunks[{i}]") for i, item in enumerate(_list(table, "trunks", "sip."))),
        realm=_string(table, "realm", "sip.", "gateway"),
        # A random secret means nonces do not survive a restart: phones simply get a fresh challenge.
        nonce_secret=secret_text.encode() if secret_text else secrets.token_bytes(32),
        nonce_max_age=float(_int(table, "nonce_max_age", "sip.", 300, minimum=10)),
        node_id=_node_id(table),
        digest_algorithms=_digest_algorithms(table),
        min_expires=min_expires,
        max_expires=max_expires,
        max_contacts_per_aor=_int(table, "max_contacts_per_aor", "sip.", 10, minimum=1),
        default_expires=default_expires,
        nat_contacts=_nat_contacts(table),
        max_call_seconds=_int(table, "max_call_seconds", "sip.", 0, minimum=0),
        transfer_ring_time_s=_int(table, "transfer_ring_time_s", "sip.", 20, minimum=1),
        routing_budget_ms=_routing_budget(table),
        dns_servers=_dns_servers(table),
        dns_timeout=_dns_timeout(table),
        tcp=_tcp_limits(table),
    )


def _node_id(table: dict[str, Any]) -> str:
    value = table.get("node_id")
    if value is None:
        # Random per process: nonces of a previous run (whose replay guard is gone) turn stale too.
        return secrets.token_hex(4)
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
        raise ConfigError(f"sip.node_id = {value!r}: use 1 to 32 letters, digits, _ or -, such as \"gw-a\"")
    return value


def _tcp_limits(table: dict[str, Any]) -> TcpLimits:
    try:
        return tcp_limits(table)
    except TcpLimitError as error:
        raise ConfigError(str(error)) from None


def _routing_budget(table: dict[str, Any]) -> int:
    value = table.get("routing_budget_ms", 300)
    if isinstance(value, bool) or not isinstance(value, int) or not 10 <= value <= 10_000:
        raise ConfigError("sip.routing_budget_ms must be a whole number of milliseconds from 10 to 10000, such as 300")
    return value


def _dns_servers(table: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    value = table.get("dns_servers", [])
    if not isinstance(value, list):
        raise ConfigError('sip.dns_servers must be a list such as ["127.0.0.1:53"]')
    servers = []
    for i, item in enumerate(value):
        key = f"sip.dns_servers[{i}] = {item!r}"
        if not isinstance(item, str):
            raise ConfigError(f'{key}: write a string such as "127.0.0.1:53" or "[::1]:53"')
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ("53" if not rest else "x")
        elif item.count(":") == 1:
            host, _, port_text = item.partition(":")
        else:
            host, port_text = item, "53"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"{key}: a DNS server must be an IP address (a name would need DNS itself)") from None
        port = _port(port_text, key)
        if port == 0:
            raise ConfigError(f"{key}: port must be a number from 1 to 65535")
        servers.append((host, port))
    return tuple(servers)


def _dns_timeout(table: dict[str, Any]) -> float:
    value = table.get("dns_timeout", 2.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= 30:
        raise ConfigError("sip.dns_timeout must be a number of seconds from 0.1 to 30, such as 2.0")
    return float(value)


_DIGEST_ALGORITHMS = ("MD5", "SHA-256")
_NAT_CONTACTS = ("source", "contact")


def _nat_contacts(table: dict[str, Any]) -> str:
    value = table.get("nat_contacts", "source")
    if value not in _NAT_CONTACTS:
        raise ConfigError(
            'sip.nat_contacts must be "source" (call a phone behind NAT at the address its REGISTER '
            f'came from) or "contact" (at the Contact it sent), not {value!r}'
        )
    return str(value)


def _digest_algorithms(table: dict[str, Any]) -> tuple[str, ...]:
    value = table.get("digest_algorithms", ["MD5"])
    if (
        not isinstance(value, list)
        or not value
        or any(item not in _DIGEST_ALGORITHMS for item in value)
        or len(set(value)) != len(value)
    ):
        raise ConfigError(
            'sip.digest_algorithms must list "MD5" and/or "SHA-256" once each, most preferred first, '
            'such as ["SHA-256", "MD5"]'
        )
    return tuple(value)


def _listen_address(value: Any, key: str) -> ListenAddress:
    if not isinstance(value, str):
        raise ConfigError(f'{key} must be a string like "udp:127.0.0.1:5060"')
    transport, _, rest = value.partition(":")
    host, _, port_text = rest.rpartition(":")
    transport = transport.lower()
    if transport not in TRANSPORTS:
        raise ConfigError(f"{key} = {value!r}: transport must be one of {', '.join(TRANSPORTS)}")
    host = host.strip("[]")
    if not host:
        raise ConfigError(f'{key} = {value!r}: write it as "{transport}:HOST:PORT"')
    return ListenAddress(transport, host, _port(port_text, f"{key} = {value!r}"))


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"{where}: port must be a number from 0 to 65535")
    return int(text)


def _route(value: Any, key: str, index: int) -> StaticRoute:
    table = _as_table(value, key)
    _reject_unknown(table, {"match", "target", "id"}, f"{key}.")
    pattern_text = _string(table, "match", f"{key}.", None)
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise ConfigError(f"{key}.match = {pattern_text!r} is not a valid regular expression: {exc}") from exc
    if not pattern_text.startswith(("^", r"\A")):
        # The regex is searched: an unanchored "00\d+" would match any user containing "00" and send
        # it out of a trunk (the shape of toll fraud). Anchoring is required rather than implied.
        raise ConfigError(
            f"{key}.match = {pattern_text!r}: anchor it at the start with ^ "
            r"('^1\d{3}$' for whole users, '^00' for a prefix); unanchored, it matches any user containing it"
        )
    target = _string(table, "target", f"{key}.", None)
    if target != "registered" and not re.match(r"^sips?:", target):
        raise ConfigError(f'{key}.target = {target!r}: use a SIP URI ("sip:host:port") or "registered"')
    return StaticRoute(_string(table, "id", f"{key}.", f"static_routes[{index}]"), pattern, target)


def _user(value: Any, key: str) -> SipUser:
    table = _as_table(value, key)
    _reject_unknown(table, {"username", "password"}, f"{key}.")
    username = _string(table, "username", f"{key}.", None)
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", username):
        raise ConfigError(f"{key}.username = {username!r}: use letters, digits and . _ + - only")
    password = _string(table, "password", f"{key}.", None)
    if not password:
        raise ConfigError(f"{key}.password must not be empty")
    return SipUser(username, password)


def _trunk(value: Any, key: str) -> Trunk:
    table = _as_table(value, key)
    _reject_unknown(table, {"host", "port"}, f"{key}.")
    host = _string(table, "host", f"{key}.", None)
    try:
        # Requests are trusted by their source address; a name would have to be resolved (and could
        # change under us) before it could vouch for anyone, so only addresses are accepted here.
        host = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        raise ConfigError(f"{key}.host = {host!r}: give the trunk's IP address (sources are matched by address)") from None
    port = table.get("port")
    if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
        raise ConfigError(f"{key}.port must be a number from 1 to 65535")
    return Trunk(host, port)


def _admin(table: dict[str, Any]) -> AdminConfig:
    _reject_unknown(table, {"listen"}, "admin.")
    listen = _string(table, "listen", "admin.", "127.0.0.1:8080")
    host, _, port_text = listen.rpartition(":")
    if not host:
        raise ConfigError(f'admin.listen = {listen!r}: write it as "HOST:PORT"')
    return AdminConfig(host.strip("[]"), _port(port_text, f"admin.listen = {listen!r}"))


def _database(table: dict[str, Any]) -> DatabaseConfig:
    _reject_unknown(table, {"url", "seed_demo", "outbox_process"}, "database.")
    url = _string(table, "url", "database.", DEFAULT_DATABASE_URL)
    if "://" not in url:
        # Not echoed: a mistyped URL may still carry the password.
        raise ConfigError('[database] url is not a URL: use a SQLAlchemy URL such as "sqlite+aiosqlite:///./gateway.db"')
    # Imported late: the storage layer brings SQLAlchemy, which nothing else in this parser needs.
    from gateway.storage.session import DatabaseUrlError, check_url

    try:
        check_url(url)
    except DatabaseUrlError as error:
        raise ConfigError(f"[database] url: {error}") from None
    seed = table.get("seed_demo", False)
    if not isinstance(seed, bool):
        raise ConfigError(f"database.seed_demo = {seed!r}: write true or false")
    outbox_process = table.get("outbox_process", True)
    if not isinstance(outbox_process, bool):
        raise ConfigError(f"database.outbox_process = {outbox_process!r}: write true or false")
    return DatabaseConfig(url, seed, outbox_process)


def _mail(table: dict[str, Any]) -> MailConfig:
    _reject_unknown(table, set(MailConfig.__dataclass_fields__), "mail.")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"mail.enabled = {enabled!r}: write true or false")
    tls = _string(table, "smtp_tls", "mail.", "starttls")
    if tls not in ("tls", "starttls", "none"):
        raise ConfigError(f'mail.smtp_tls = {tls!r}: write "tls", "starttls" or "none"')
    return MailConfig(
        enabled=enabled,
        smtp_host=_string(table, "smtp_host", "mail.", ""),
        smtp_port=_int(table, "smtp_port", "mail.", 587, minimum=1),
        smtp_tls=tls,
        smtp_login=_string(table, "smtp_login", "mail.", ""),
        smtp_password=_string(table, "smtp_password", "mail.", ""),
        poll_seconds=_int(table, "poll_seconds", "mail.", 60, minimum=1),
        idle_seconds=_int(table, "idle_seconds", "mail.", 600, minimum=1),
        retry_max_seconds=_int(table, "retry_max_seconds", "mail.", 300, minimum=1),
        timeout_seconds=_int(table, "timeout_seconds", "mail.", 30, minimum=1),
    )


# -- small typed getters ----------------------------------------------------------------------
def _reject_unknown(table: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]} (known keys: {', '.join(sorted(known))})")


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    return _as_table(value, key)


def _as_table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table")
    return value


def _list(table: dict[str, Any], key: str, prefix: str) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{prefix}{key} must be an array of tables ([[{prefix}{key}]])")
    return value


def _string(table: dict[str, Any], key: str, prefix: str, default: str | None) -> str:
    value = table.get(key)
    if value is None:
        if default is None:
            raise ConfigError(f"{prefix}{key} is required")
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{prefix}{key} must be a string")
    return value


def _int(table: dict[str, Any], key: str, prefix: str, default: int, *, minimum: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{prefix}{key} must be a whole number ≥ {minimum}")
    return value
