"""The CRM rows' harness (bench/crm.py): caller numbers, SIPp injection file, config rewriting,
and one short real run: the gateway on a given config and database, a phone that REGISTERs with
digest and answers, and a caller with injected numbers."""

from __future__ import annotations

import re
import socket
import sqlite3
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from bench.crm import (
    CALLER_SCENARIO,
    CrmPair,
    CrmSetup,
    caller_numbers,
    run_crm_row,
    to_toml,
    write_gateway_config,
    write_injection_file,
)
from bench.settings import PROJECT_ROOT, BenchSettings, Ports, RampPlan
from bench.targets import MiddleBox

E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def _free_ports(count: int) -> list[int]:
    """Ports free for UDP and TCP alike (the admin API is TCP, everything else UDP)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        if port not in ports:
            ports.append(port)
    return ports


def test_new_callers_are_distinct_e164_numbers_and_differ_between_runs() -> None:
    numbers = caller_numbers("new", 5000, CrmSetup(), salt=17)
    assert len(set(numbers)) == 5000 and all(E164.match(n) for n in numbers)
    assert not set(numbers) & set(caller_numbers("new", 5000, CrmSetup(), salt=18))
    assert caller_numbers("known", 5000, CrmSetup(known_callers=("+4930111",)), salt=1) == ["+4930111"]
    with pytest.raises(ValueError, match="caller_mode"):
        caller_numbers("old", 1, CrmSetup(), salt=1)  # type: ignore[arg-type]


def test_injection_file_is_sequential_for_new_and_random_for_known(tmp_path: Path) -> None:
    new = write_injection_file(tmp_path / "new.csv", ["+491", "+492"], "new").read_text()
    assert new.splitlines() == ["SEQUENTIAL", "+491;", "+492;"]
    known = write_injection_file(tmp_path / "known.csv", ["+493"], "known").read_text()
    assert known.splitlines()[0] == "RANDOM"


@pytest.mark.parametrize("config", ["bench/gateway-bench.toml", "config/demo.toml"])
def test_to_toml_writes_back_what_the_gateway_configs_hold(config: str) -> None:
    data = tomllib.loads((PROJECT_ROOT / config).read_text())
    assert tomllib.loads(to_toml(data)) == data


def test_gateway_config_gets_the_database_url_and_the_bench_ports(tmp_path: Path) -> None:
    settings = replace(BenchSettings(), ports=Ports(gateway=15060, gateway_admin=18080))
    out = write_gateway_config(PROJECT_ROOT / "config/demo.toml", "postgresql+asyncpg://u@h/db", tmp_path / "g.toml",
                               settings)
    data = tomllib.loads(out.read_text())
    assert data["database"] == {"url": "postgresql+asyncpg://u@h/db", "seed_demo": True}
    assert data["sip"]["listen"] == ["udp:127.0.0.1:15060"] and data["admin"]["listen"] == "127.0.0.1:18080"
    assert data["sip"]["static_routes"][0]["target"] == "registered"  # the rest is kept


def test_crm_caller_dials_the_number_with_injected_callers(tmp_path: Path) -> None:
    settings = replace(BenchSettings(), state_dir=tmp_path)
    (tmp_path / "step").mkdir()
    pair = CrmPair(MiddleBox(settings), settings, CrmSetup(number="+493012345"), "new")
    argv = pair.uac_argv(10, 30, tmp_path / "step")
    assert "-sn" not in argv and argv[argv.index("-sf") + 1] == str(CALLER_SCENARIO)
    assert argv[argv.index("-s") + 1] == "+493012345"
    assert len((tmp_path / "step" / "callers.csv").read_text().splitlines()) == 31


def test_a_registered_phone_answers_calls_from_injected_callers_through_the_gateway(tmp_path: Path) -> None:
    uas, gateway, admin, uac, uas_cp, uac_cp = _free_ports(6)
    settings = replace(BenchSettings(), state_dir=tmp_path,
                       ports=Ports(uas=uas, gateway=gateway, gateway_admin=admin, uac=uac, uas_control=uas_cp,
                                   uac_control=uac_cp),
                       plan=RampPlan(rates=(10,), step_seconds=1.0, call_ms=100, refine=False))
    setup = CrmSetup(number="1001", extension="1001", secret="s3cret-1001")
    config = tmp_path / "base.toml"
    # Until routing by number is wired, the static "registered" route stands in for the queue group.
    config.write_text('log_level = "WARNING"\n[sip]\nrealm = "bench"\n'
                      '[[sip.static_routes]]\nid = "ext"\nmatch = "^1001$"\ntarget = "registered"\n'
                      f'[[sip.users]]\nusername = "1001"\npassword = "{setup.secret}"\n'
                      '[[sip.trunks]]\nhost = "127.0.0.1"\nport = ' + str(uac) + "\n")
    result = run_crm_row(config, f"sqlite+aiosqlite:///{tmp_path}/crm.db", "new", setup=setup, settings=settings,
                         half_seconds=0, say=lambda _line: None)
    assert result.error is None, result.error
    (step,) = result.steps
    assert step.passed, step.reason
    assert (step.uac_successful, step.uas_successful) == (10, 10)
    assert "registered 1001" in (tmp_path / "crm-new" / "uas_logs.log").read_text()
    assert result.half is None


def test_a_crm_step_counts_as_written_only_when_every_call_ended_in_the_log_and_nothing_is_pending(
        tmp_path: Path) -> None:
    from bench.crm import _is_a_number, _write_backlog, _writes_done
    from bench.crm_seed import crm_setup, seeded_database

    setup = crm_setup(agents=2)
    seeded_database(tmp_path / "crm.db", setup, ("127.0.0.1", 5090), agents=2)
    database = tmp_path / "crm.db"
    assert _is_a_number(database, setup.number) and not _is_a_number(database, "+490000")
    assert _write_backlog(database) == (0, 0) and _writes_done(database, 0)
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO calls (interaction_key, call_id, direction, number, party_raw, started_at, offered_ids, "
            "outcome, routing) VALUES ('call:a', 'a', 'inbound', '+49', '+49', '2026-01-01', '[]', 'ringing', '{}')")
    assert not _writes_done(database, 1)  # logged, but not ended yet
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE calls SET ended_at = '2026-01-01', outcome = 'answered'")
    assert _writes_done(database, 1) and not _writes_done(database, 2)
