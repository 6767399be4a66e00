"""SPEC R4: an employee's outside call leaves through the trunk of their outbound number."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.routing import EmployeeSpec, NumberSpec, TargetKind
from gateway.routing.explanation import RULE_TEXTS
from gateway.routing.outbound import OutboundInputs, format_number, is_outside_number, route_outbound
from gateway.trunks.model import CallerIdFormat, TrunkKind, TrunkSpec

PARIS = NumberSpec(1, "+33142685300", "FR", None, trunk_id=4)
MILAN = NumberSpec(2, "+390289097000", "IT", None, trunk_id=5)
PROVIDER = TrunkSpec(4, "fr provider", TrunkKind.PROVIDER, "sip.fr.example", deny_patterns=(r"^(112|15|17|18)$", r"^\+338[9]"))
PBX = TrunkSpec(5, "milan pbx", TrunkKind.PBX, "10.0.0.5", 5070, "tcp", caller_id_format=CallerIdFormat.NATIONAL)
NUMBERS = {1: PARIS, 2: MILAN}
TRUNKS = {4: PROVIDER, 5: PBX}


def outbound(dialled: str, employee: EmployeeSpec, default: int | None = 1, trunks: dict[int, TrunkSpec] = TRUNKS):
    return route_outbound(OutboundInputs(dialled, employee, NUMBERS, trunks, default))


def test_r4_leaves_through_the_trunk_of_the_employees_own_number_with_it_as_caller_id() -> None:
    decision = outbound("02 12 34 56 78", EmployeeSpec(7, "107", outbound_number_id=2))
    (target,) = decision.targets
    assert target.kind is TargetKind.OUTSIDE
    assert target.number == "+390212345678"
    assert target.uri == "sip:0212345678@10.0.0.5:5070;transport=tcp"  # the PBX wants national forms
    assert (target.trunk_id, target.caller_id) == (5, "0289097000")
    assert decision.rule_ids == ("R4", "R4.employee_number")
    assert (decision.number, decision.caller_employee_id, decision.status) == ("+390289097000", 7, None)


@pytest.mark.parametrize("dialled", ["+33612345678", "0033612345678", "06 12 34 56 78", "06.12.34.56.78"])
def test_r4_every_written_form_of_an_outside_number_reaches_the_same_e164(dialled: str) -> None:
    decision = outbound(dialled, EmployeeSpec(7, "107"))
    (target,) = decision.targets
    assert target.number == "+33612345678"
    assert target.uri == "sip:+33612345678@sip.fr.example:5060"
    assert target.caller_id == "+33142685300"
    assert decision.rule_ids == ("R4", "R4.default_number")


def test_r4_without_own_or_default_outbound_number_is_refused() -> None:
    decision = outbound("+33612345678", EmployeeSpec(7, "107"), default=None)
    assert (decision.status, decision.steps) == (403, ())
    assert decision.rule_ids == ("R4.no_outbound_number",)


def test_r4_a_number_without_trunk_or_with_a_disabled_one_is_503() -> None:
    assert outbound("+33612345678", EmployeeSpec(7, "107"), trunks={}).status == 503
    disabled = {4: replace(PROVIDER, enabled=False)}
    decision = outbound("+33612345678", EmployeeSpec(7, "107"), trunks=disabled)
    assert decision.status == 503 and decision.rule_ids[-1] == "R4.no_trunk"


@pytest.mark.parametrize("dialled", ["112", "17", "+33899123456", "0899123456"])
def test_r4_deny_patterns_refuse_emergency_and_premium_numbers_with_403(dialled: str) -> None:
    decision = outbound(dialled, EmployeeSpec(7, "107"))
    assert decision.status == 403
    assert decision.rule_ids[-1] == "R4.denied"
    assert "deny pattern" in decision.notes[0]


def test_r4_something_that_is_no_phone_number_is_404() -> None:
    decision = outbound("12", EmployeeSpec(7, "107"))
    assert (decision.status, decision.rule_ids[-1]) == (404, "R4.not_a_number")


def test_r4_outside_numbers_are_told_from_other_dialled_users() -> None:
    assert is_outside_number("+33 6 12 34 56 78") and is_outside_number("0612345678")
    assert not is_outside_number("alice") and not is_outside_number("") and not is_outside_number(None)


def test_r4_caller_id_forms() -> None:
    assert format_number("+33612345678", CallerIdFormat.E164_PLUS, "FR") == "+33612345678"
    assert format_number("+33612345678", CallerIdFormat.E164, "FR") == "33612345678"
    assert format_number("+33612345678", CallerIdFormat.NATIONAL, "FR") == "0612345678"
    assert format_number("+33612345678", CallerIdFormat.NATIONAL, "IT") == "+33612345678"


def test_r4_every_rule_has_a_sentence() -> None:
    for dialled, employee, default in [("+33612345678", EmployeeSpec(7, "1", outbound_number_id=1), None),
                                       ("112", EmployeeSpec(7, "1"), 1), ("1", EmployeeSpec(7, "1"), None)]:
        assert set(outbound(dialled, employee, default).rule_ids) <= set(RULE_TEXTS)
