"""Configuration loading: a good file becomes typed settings; a bad one says what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, ListenAddress, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]

GOOD = """
[sip]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5061"]
realm = "example.test"
min_expires = 30
[[sip.static_routes]]
match = "^1\\\\d{3}$"
target = "registered"
[[sip.static_routes]]
id = "trunk"
match = "^.*$"
target = "sip:127.0.0.1:5090"
[[sip.users]]
username = "1001"
password = "s3cret"
[[sip.trunks]]
host = "127.0.0.1"
[admin]
listen = "127.0.0.1:8081"
[database]
url = "sqlite+aiosqlite:///./x.db"
"""


def test_good_file_is_typed() -> None:
    config = parse_config(GOOD)
    sip = config.sip
    assert sip.listen == (ListenAddress("udp", "127.0.0.1", 5060), ListenAddress("tcp", "127.0.0.1", 5061))
    assert [r.rule_id for r in sip.static_routes] == ["static_routes[0]", "trunk"]
    assert sip.static_routes[0].pattern.fullmatch("1001") is not None
    assert sip.static_routes[0].target == "registered"
    assert sip.users[0].username == "1001" and sip.users[0].password == "s3cret"
    assert sip.trunks[0].host == "127.0.0.1" and sip.trunks[0].port is None
    assert (config.admin.host, config.admin.port) == ("127.0.0.1", 8081)
    assert config.database.url == "sqlite+aiosqlite:///./x.db"
    assert sip.realm == "example.test" and sip.min_expires == 30
    assert len(sip.nonce_secret) == 32  # random when not configured


def test_max_contacts_per_aor() -> None:
    assert parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']").sip.max_contacts_per_aor == 10
    config = parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']\nmax_contacts_per_aor = 3")
    assert config.sip.max_contacts_per_aor == 3
    with pytest.raises(ConfigError, match="max_contacts_per_aor"):
        parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']\nmax_contacts_per_aor = 0")


def test_digest_algorithms_in_the_order_written() -> None:
    config = parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']\ndigest_algorithms = ['SHA-256', 'MD5']")
    assert config.sip.digest_algorithms == ("SHA-256", "MD5")
    assert parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']").sip.digest_algorithms == ("MD5",)


def test_minimal_file_gets_the_defaults() -> None:
    config = parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']\n")
    assert config.database.url == "sqlite+aiosqlite:///./gateway.db"
    assert (config.admin.host, config.admin.port) == ("127.0.0.1", 8080)
    assert config.sip.static_routes == () and config.sip.users == ()


def test_passwords_do_not_show_in_repr() -> None:
    assert "s3cret" not in repr(parse_config(GOOD))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[admin]\nlisten='127.0.0.1:1'", "missing [sip] table"),
        ("[sip]\nlisten = []", "sip.listen must be a non-empty list"),
        ("[sip]\nlisten = ['sctp:127.0.0.1:5060']", "transport must be one of udp, tcp"),
        ("[sip]\nlisten = ['udp:127.0.0.1:http']", "port must be a number"),
        ("[sip]\nlisten = ['udp:127.0.0.1:70000']", "port must be a number"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\nlisen = 1", "unknown key sip.lisen"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[[sip.static_routes]]\nmatch = '('\ntarget='registered'",
         "sip.static_routes[0].match = '(' is not a valid regular expression"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[[sip.static_routes]]\nmatch = '^.*$'\ntarget='127.0.0.1'",
         'use a SIP URI ("sip:host:port") or "registered"'),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[[sip.static_routes]]\ntarget='registered'",
         "sip.static_routes[0].match is required"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[[sip.users]]\nusername='1001'\npassword=''",
         "sip.users[0].password must not be empty"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[[sip.users]]\nusername='a b'\npassword='x'",
         "use letters, digits"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[[sip.users]]\nusername='1'\npassword='x'\n"
         "[[sip.users]]\nusername='1'\npassword='y'", "username '1' is defined more than once"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\nmin_expires = 0", "sip.min_expires must be a whole number"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[admin]\nlisten = '8080'", 'admin.listen = \'8080\': write it as "HOST:PORT"'),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[database]\nurl = 'gateway.db'", "use a SQLAlchemy URL"),
        ("[sip\nlisten=1", "not valid TOML"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[[sip.trunks]]\nhost = 'pbx.example.com'", "give the trunk's IP address"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[[sip.static_routes]]\nmatch = '00\\d+'\ntarget='registered'",
         "anchor it at the start with ^"),
        ("[database]\nurl = 'postgresql:gw:s3cret@db/gw'\n[sip]\nlisten = ['udp:127.0.0.1:5060']", "is not a URL"),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\ndigest_algorithms = ['SHA-512']", 'list "MD5" and/or "SHA-256"'),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\ndigest_algorithms = []", 'list "MD5" and/or "SHA-256"'),
        ("[sip]\nlisten = ['udp:127.0.0.1:5060']\ndigest_algorithms = ['MD5', 'MD5']", "once each"),
    ],
)
def test_bad_config_says_what_to_fix(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert fragment in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "nope.toml")


def test_demo_config_loads() -> None:
    config = load_config(REPO / "config" / "demo.toml")
    assert {str(a) for a in config.sip.listen} == {"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"}
    assert {u.username for u in config.sip.users} == {"1001", "1002"}
    assert (config.admin.host, config.admin.port) == ("127.0.0.1", 8080)


def test_gateway_run_with_bad_config_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[sip]\nlisten = ['udp:127.0.0.1:5060']\nrealm = 5\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(bad)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert result.returncode == 2
    assert "sip.realm must be a string" in result.stderr


def test_nat_contacts_defaults_to_the_register_source() -> None:
    assert parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']").sip.nat_contacts == "source"
    config = parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']\nnat_contacts = 'contact'")
    assert config.sip.nat_contacts == "contact"


@pytest.mark.parametrize("value", ["'proxy'", "'Source'", "true", "''"])
def test_bad_nat_contacts_says_what_to_write(value: str) -> None:
    with pytest.raises(ConfigError, match='sip.nat_contacts must be "source"') as info:
        parse_config(f"[sip]\nlisten = ['udp:127.0.0.1:5060']\nnat_contacts = {value}")
    assert '"contact"' in str(info.value)


def test_max_call_seconds_is_off_by_default_and_takes_whole_seconds() -> None:
    assert parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']").sip.max_call_seconds == 0
    config = parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']\nmax_call_seconds = 14400")
    assert config.sip.max_call_seconds == 14400


@pytest.mark.parametrize("value", ["-1", "1.5", "'4h'", "true"])
def test_bad_max_call_seconds_says_what_to_write(value: str) -> None:
    with pytest.raises(ConfigError, match="sip.max_call_seconds must be a whole number ≥ 0"):
        parse_config(f"[sip]\nlisten = ['udp:127.0.0.1:5060']\nmax_call_seconds = {value}")


def test_dns_servers_default_to_the_system_and_take_ip_port() -> None:
    default = parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']").sip
    assert default.dns_servers == () and default.dns_timeout == 2.0
    config = parse_config(
        "[sip]\nlisten = ['udp:127.0.0.1:5060']\n"
        "dns_servers = ['127.0.0.1:5353', '[::1]:53', '10.0.0.1', '::2']\ndns_timeout = 0.5"
    )
    assert config.sip.dns_servers == (("127.0.0.1", 5353), ("::1", 53), ("10.0.0.1", 53), ("::2", 53))
    assert config.sip.dns_timeout == 0.5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("'127.0.0.1:53'", "must be a list"),
        ("[53]", 'write a string such as "127.0.0.1:53"'),
        ("['dns.example:53']", "must be an IP address"),
        ("['127.0.0.1:dns']", "port must be a number"),
        ("['127.0.0.1:0']", "port must be a number from 1"),
        ("['[::1]x']", "port must be a number"),
    ],
)
def test_bad_dns_servers_say_what_to_write(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="sip.dns_servers") as info:
        parse_config(f"[sip]\nlisten = ['udp:127.0.0.1:5060']\ndns_servers = {value}")
    assert message in str(info.value)


@pytest.mark.parametrize("value", ["0", "-1", "60", "'2s'", "true"])
def test_bad_dns_timeout_says_what_to_write(value: str) -> None:
    with pytest.raises(ConfigError, match="sip.dns_timeout must be a number of seconds from 0.1 to 30"):
        parse_config(f"[sip]\nlisten = ['udp:127.0.0.1:5060']\ndns_timeout = {value}")


def test_a_mistyped_database_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[sip]\nlisten = ['udp:127.0.0.1:5060']\n[database]\nurl = 'postgresql:gw:s3cret@db/gw'")
    assert "s3cret" not in str(info.value)


def test_journal_spool_settings_are_read_and_checked() -> None:
    from gateway.config import ConfigError, parse_config

    base = '[sip]\nlisten = ["udp:127.0.0.1:5060"]\n'
    default = parse_config(base).journal
    assert (default.spool_dir, default.memory_calls, default.spool_segment_kb) == ("", 1000, 4096)
    set_ = parse_config(base + '[journal]\nspool_dir = "/var/spool/gw"\nmemory_calls = 50\nspool_segment_kb = 64\n')
    assert (set_.journal.spool_dir, set_.journal.memory_calls, set_.journal.spool_segment_kb) == ("/var/spool/gw", 50, 64)
    for bad, says in (("memory_calls = 0", "journal.memory_calls must be a whole number ≥ 1"),
                      ("spool_segment_kb = 1", "journal.spool_segment_kb must be a whole number ≥ 16"),
                      ("spool = 1", "unknown key journal.spool")):
        try:
            parse_config(base + f"[journal]\n{bad}\n")
        except ConfigError as error:
            assert says in str(error)
        else:
            raise AssertionError(f"{bad} accepted")


def test_the_outbox_process_setting_is_read_and_checked() -> None:
    base = '[sip]\nlisten = ["udp:127.0.0.1:5060"]\n'
    assert parse_config(base).database.outbox_process is True
    assert parse_config(base + "[database]\noutbox_process = false\n").database.outbox_process is False
    with pytest.raises(ConfigError, match="database.outbox_process = 'yes': write true or false"):
        parse_config(base + '[database]\noutbox_process = "yes"\n')
