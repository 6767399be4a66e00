"""The routing directory loads trunks (SPEC T1), numbers' trunks, employees' outbound numbers and the
default outbound number (R4) from the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from enum import StrEnum

import pytest

from gateway.calls.directory import load_snapshot
from gateway.storage.models import Employee, Number, Trunk
from gateway.storage.models import enums as stored
from gateway.storage.session import make_engine, make_sessionmaker
from gateway.trunks.model import CallerIdFormat, NumberHeader, TrunkKind, TrunkSpec, TrunkTrust

SECRET = "provider-s3cret-Pa55"


@pytest.mark.parametrize(("stored_enum", "domain_enum"), [
    (stored.TrunkKind, TrunkKind), (stored.TrunkTrust, TrunkTrust),
    (stored.TrunkNumberHeader, NumberHeader), (stored.CallerIdFormat, CallerIdFormat),
])
def test_t1_stored_trunk_words_are_the_domain_words(stored_enum: type[StrEnum], domain_enum: type[StrEnum]) -> None:
    assert [member.value for member in stored_enum] == [member.value for member in domain_enum]


async def _snapshot_of_a_provider_and_a_pbx(db_url: str):
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            provider = Trunk(name="Provider", kind="provider", host="sip.provider.example", port=5080,
                             transport="tcp", trust="registration", username="main", secret=SECRET,
                             number_headers="p_called_party_id,request_uri", caller_id_format="national",
                             register_expires=600, deny_patterns=[r"^\+3311[25]$", r"^\+3389"])
            pbx = Trunk(name="Office PBX", kind="pbx", host="192.0.2.10", trust="source", enabled=False)
            paris = Number(number="+33184880000", default_region="FR", trunk=provider, default_outbound=True)
            office = Number(kind="sip_pbx", number="+33184880001", default_region="FR", trunk=pbx)
            session.add_all([provider, pbx, paris, office])
            await session.flush()
            session.add_all([Employee(name="Ann", extension="101", outbound_number_id=office.id),
                             Employee(name="Bob", extension="102")])
        async with sessions() as session:
            return await load_snapshot(session, "gateway.test")
    finally:
        await engine.dispose()


async def test_t1_directory_loads_trunk_specs_with_the_domain_enums(db_url: str) -> None:
    snapshot = await _snapshot_of_a_provider_and_a_pbx(db_url)
    provider, pbx = sorted(snapshot.trunks.values(), key=lambda spec: spec.id)
    assert provider == TrunkSpec(
        id=provider.id, name="Provider", kind=TrunkKind.PROVIDER, host="sip.provider.example", port=5080,
        transport="tcp", trust=TrunkTrust.REGISTRATION, username="main", secret=SECRET,
        number_headers=(NumberHeader.P_CALLED_PARTY_ID, NumberHeader.REQUEST_URI),
        caller_id_format=CallerIdFormat.NATIONAL, register_expires=600,
        deny_patterns=(r"^\+3311[25]$", r"^\+3389"), enabled=True,
    )
    assert type(provider.kind) is TrunkKind and type(provider.number_headers[0]) is NumberHeader
    assert provider.registers
    assert pbx == TrunkSpec(id=pbx.id, name="Office PBX", kind=TrunkKind.PBX, host="192.0.2.10", enabled=False)
    assert SECRET not in repr(snapshot.trunks)  # T2: a snapshot in a log line keeps the secret out


async def test_r4_directory_knows_numbers_trunks_and_outbound_numbers(db_url: str) -> None:
    snapshot = await _snapshot_of_a_provider_and_a_pbx(db_url)
    paris, office = snapshot.numbers["+33184880000"], snapshot.numbers["+33184880001"]
    assert snapshot.trunks[paris.trunk_id].name == "Provider"
    assert snapshot.trunks[office.trunk_id].name == "Office PBX"
    assert snapshot.default_outbound_number_id == paris.id
    by_extension = {spec.extension: spec for spec in snapshot.employees.values()}
    assert by_extension["101"].outbound_number_id == office.id
    assert by_extension["102"].outbound_number_id is None
