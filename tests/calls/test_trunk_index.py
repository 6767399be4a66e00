"""SPEC T1 on the SIP side: which trunk an INVITE comes from, the dialled number in the trunk's header
order, what we answer a trunk's challenge with, and a PBX's digest login."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from gateway.calls.directory import DirectorySnapshot, RoutingDirectory
from gateway.calls.trunk_index import CurrentTrunks, TrunkIndex
from gateway.routing.model import NumberSpec
from gateway.routing.request import RouteRequest
from gateway.sip.auth import compute_ha1
from gateway.trunks.model import NumberHeader, TrunkKind, TrunkSpec, TrunkTrust

PROVIDER = TrunkSpec(1, "provider", TrunkKind.PROVIDER, "192.0.2.10", username="acct", secret="s3cret")
REGISTERED = TrunkSpec(2, "registered", TrunkKind.PROVIDER, "sip.example.net", trust=TrunkTrust.REGISTRATION,
                       username="acct2", secret="x")
PBX = TrunkSpec(3, "pbx", TrunkKind.PBX, "pbx.customer.example", trust=TrunkTrust.DIGEST, username="acme",
                secret="pbx-secret")
LOCALHOST = TrunkSpec(4, "by name", TrunkKind.PBX, "localhost")


def test_t1_a_trunk_trusted_by_source_is_recognised_by_address_whatever_the_port() -> None:
    index = TrunkIndex({1: PROVIDER, 3: PBX}, "gw")
    assert index.by_source("192.0.2.10", 5060) == 1
    assert index.by_source("192.0.2.10", 40123) == 1
    assert index.by_source("192.0.2.11", 5060) is None


def test_t1_a_disabled_trunk_is_nobody() -> None:
    index = TrunkIndex({1: replace(PROVIDER, enabled=False)}, "gw")
    assert index.by_source("192.0.2.10", 5060) is None and index.credentials(1) is None


def test_t1_a_provider_we_register_to_is_trusted_from_where_its_registrar_answered() -> None:
    answered_from = {("198.51.100.7", 5060): 2}
    index = TrunkIndex({2: REGISTERED}, "gw", lambda host, port: answered_from.get((host, port)))
    assert index.by_source("198.51.100.7", 5060) == 2
    assert index.by_source("198.51.100.8", 5060) is None


def test_t1_a_pbx_logs_in_with_its_trunks_credentials() -> None:
    index = TrunkIndex({3: PBX, 1: PROVIDER}, "gw")
    assert index.by_login("acme") == 3
    assert index.by_login("acct") is None  # a source-trusted trunk's username is what we answer with
    assert index.ha1("acme", "MD5") == compute_ha1("MD5", "acme", "gw", "pbx-secret")
    assert index.ha1("acme", "SHA-256") == compute_ha1("SHA-256", "acme", "gw", "pbx-secret")
    assert index.ha1("acct", "MD5") is None


def test_r4_credentials_answer_a_trunks_challenge() -> None:
    index = TrunkIndex({1: PROVIDER, 4: LOCALHOST}, "gw")
    assert index.credentials(1) == ("acct", "s3cret")
    assert index.credentials(4) is None and index.credentials(99) is None


def test_t1_host_names_of_source_trunks_are_resolved_off_the_sip_path() -> None:
    index = TrunkIndex({4: LOCALHOST}, "gw")
    assert index.by_source("127.0.0.1", 5060) is None
    asyncio.run(index.resolve_names())
    assert index.by_source("127.0.0.1", 5060) == 4


def test_t1_the_b2buas_view_follows_the_directorys_latest_index() -> None:
    current = [TrunkIndex({}, "gw")]
    view = CurrentTrunks(lambda: current[0])
    assert view.by_source("192.0.2.10", 1) is None
    current[0] = TrunkIndex({1: PROVIDER}, "gw")
    assert view.by_source("192.0.2.10", 1) == 1 and view.credentials(1) == ("acct", "s3cret")


def request(**fields: Any) -> RouteRequest:
    base: dict[str, Any] = dict(
        call_id="c", request_user="acct", to_user="+33184880000", caller_uri="sip:+33612345678@p",
        caller_user="+33612345678", caller_display=None, asserted=None, privacy=None,
        source=("udp", "192.0.2.10", 5060), trusted=True, authenticated_user=None, at=0.0,
    )
    base.update(fields)
    return RouteRequest(**base)


def directory_with(trunk: TrunkSpec) -> RoutingDirectory:
    directory = RoutingDirectory(None, "gw")  # type: ignore[arg-type]  # never reads the database here
    numbers = {e164: NumberSpec(i, e164, "FR", None, trunk_id=trunk.id)
               for i, e164 in enumerate(("+33184880000", "+33184880001", "+33184880002"), 1)}
    directory.snapshot = DirectorySnapshot(numbers=numbers, regions=("FR",), trunks={trunk.id: trunk})
    return directory


def test_t1_the_dialled_number_is_read_in_the_trunks_header_order() -> None:
    provider = replace(PROVIDER, number_headers=(NumberHeader.P_CALLED_PARTY_ID, NumberHeader.TO))
    directory = directory_with(provider)
    # The Request-URI names the account (a registration's Contact), not the number.
    found = directory.number_for(request(trunk_id=1, called_party_user="0184880001"))
    assert found is not None and found.e164 == "+33184880001"
    found = directory.number_for(request(trunk_id=1))
    assert found is not None and found.e164 == "+33184880000"  # no P-Called-Party-ID: To is next


def test_t1_a_diversion_header_can_name_the_number() -> None:
    directory = directory_with(replace(PROVIDER, number_headers=(NumberHeader.DIVERSION,)))
    found = directory.number_for(request(trunk_id=1, diversion_user="+33184880002"))
    assert found is not None and found.e164 == "+33184880002"
    assert directory.number_for(request(trunk_id=1)) is None  # To is not in this trunk's order


def test_t1_calls_from_no_database_trunk_read_the_request_uri_then_to() -> None:
    directory = directory_with(PROVIDER)
    found = directory.number_for(request(request_user="0184880002"))
    assert found is not None and found.e164 == "+33184880002"


def test_t1_source_trunk_names_go_through_the_sip_resolver_first() -> None:
    asked: list[tuple[str, str, int]] = []

    async def resolve(target: tuple[str, str, int]) -> tuple[tuple[str, str, int], ...]:
        asked.append(target)
        return (("udp", "203.0.113.5", 5060),)

    named = replace(LOCALHOST, host="pbx.customer.example")
    index = TrunkIndex({4: named}, "gw")
    asyncio.run(index.resolve_names(resolve))
    assert asked == [("udp", "pbx.customer.example", 5060)]
    assert index.by_source("203.0.113.5", 5060) == 4


def test_t1_a_name_dns_does_not_know_falls_back_to_the_systems_hosts() -> None:
    async def fails(target: tuple[str, str, int]) -> tuple[tuple[str, str, int], ...]:
        raise LookupError(target[1])

    index = TrunkIndex({4: LOCALHOST}, "gw")
    asyncio.run(index.resolve_names(fails))
    assert index.by_source("127.0.0.1", 5060) == 4
