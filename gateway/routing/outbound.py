"""SPEC R4: an employee's call to an outside number leaves through the trunk of their outbound number.

A pure decision like `steps.route`. Rule ids:

- ``R4``: the call leaves through a trunk, with the outbound number as caller ID.
- ``R4.employee_number`` / ``R4.default_number``: whose outbound number it is (the employee's own
  setting, else the gateway's default outbound number).
- ``R4.no_outbound_number`` (403): neither exists. ``R4.no_trunk`` (503): the number has no usable trunk.
- ``R4.denied`` (403): the dialled number matches one of the trunk's deny patterns (emergency, premium).
- ``R4.not_a_number`` (404): what was dialled is no phone number.

The dialled number is read as E.164 (``+…``), with the ``00`` international prefix, or in the national
form of the outbound number's region; the trunk gets it, and the caller ID, in the form it asks for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import phonenumbers

from gateway.crm_bridge.identity import normalize_phone
from gateway.routing.decision import RouteDecision
from gateway.routing.model import EmployeeSpec, NumberSpec
from gateway.routing.numbers import SEPARATORS as _SEPARATORS
from gateway.routing.targets import RingStep, Target
from gateway.trunks.model import CallerIdFormat, TrunkSpec

RULE_OUTBOUND = "R4"
RULE_EMPLOYEE_NUMBER = "R4.employee_number"
RULE_DEFAULT_NUMBER = "R4.default_number"
RULE_NO_OUTBOUND_NUMBER = "R4.no_outbound_number"
RULE_NO_TRUNK = "R4.no_trunk"
RULE_DENIED = "R4.denied"
RULE_NOT_A_NUMBER = "R4.not_a_number"

_DIALLED = re.compile(r"\+?[0-9*#]+")


@dataclass(frozen=True, slots=True)
class OutboundInputs:
    """What an outbound decision reads: who dials what, the numbers (by id), trunks (by id) and the
    default outbound number."""

    dialled: str
    employee: EmployeeSpec
    numbers: Mapping[int, NumberSpec]
    trunks: Mapping[int, TrunkSpec]
    default_number_id: int | None = None


def is_outside_number(dialled: str | None) -> bool:
    """Whether a dialled user looks like a phone number (digits, an optional leading '+', separators)."""
    if not dialled:
        return False
    return _DIALLED.fullmatch(_SEPARATORS.sub("", dialled)) is not None


def route_outbound(inputs: OutboundInputs) -> RouteDecision:
    """Where the employee's call to `inputs.dialled` goes (see the module docstring)."""
    employee, numbers = inputs.employee, inputs.numbers
    own = employee.outbound_number_id
    if own is not None and own in numbers:
        number, whose = numbers[own], RULE_EMPLOYEE_NUMBER
    elif inputs.default_number_id is not None and inputs.default_number_id in numbers:
        number, whose = numbers[inputs.default_number_id], RULE_DEFAULT_NUMBER
    else:
        return _refuse(403, (RULE_NO_OUTBOUND_NUMBER,),
                       f"employee {employee.id} has no outbound number and there is no default outbound number")
    rules = (RULE_OUTBOUND, whose)
    trunk = inputs.trunks.get(number.trunk_id) if number.trunk_id is not None else None
    if trunk is None or not trunk.enabled:
        why = "has no trunk" if trunk is None else f"leaves through trunk {trunk.name!r}, which is disabled"
        return _refuse(503, (*rules, RULE_NO_TRUNK), f"outbound number {number.e164} {why}", number.e164)
    digits = _SEPARATORS.sub("", inputs.dialled)
    denied = _denied_by(trunk, digits, _dialled_e164(digits, number.default_region))
    if denied is not None:
        return _refuse(403, (*rules, RULE_DENIED),
                       f"{inputs.dialled!r} matches the deny pattern {denied!r} of trunk {trunk.name!r}", number.e164)
    e164 = _dialled_e164(digits, number.default_region)
    if e164 is None:
        return _refuse(404, (*rules, RULE_NOT_A_NUMBER), f"{inputs.dialled!r} is not a phone number", number.e164)
    target = Target.outside(
        e164,
        trunk.uri(format_number(e164, trunk.caller_id_format, number.default_region)),
        trunk_id=trunk.id,
        caller_id=format_number(number.e164, trunk.caller_id_format, number.default_region),
    )
    note = f"leaves through trunk {trunk.name!r} as {number.e164}"
    return RouteDecision((RingStep((target,), None, rules),), None, rules, (note,), number.e164, employee.id)


def _refuse(status: int, rules: tuple[str, ...], note: str, number: str | None = None) -> RouteDecision:
    return RouteDecision((), status, rules, (note,), number)


def _dialled_e164(digits: str, region: str) -> str | None:
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    return normalize_phone(digits, "" if digits.startswith("+") else region)


def _denied_by(trunk: TrunkSpec, digits: str, e164: str | None) -> str | None:
    """The first deny pattern that finds the number as dialled or in E.164 (short codes such as 112 have
    no E.164 form, so both are tried)."""
    for pattern in trunk.deny_patterns:
        try:
            compiled = re.compile(pattern)
        except re.error:
            return pattern  # an unreadable deny rule fails closed (the admin API refuses such patterns)
        if compiled.search(digits) or (e164 is not None and compiled.search(e164)):
            return pattern
    return None


def format_number(e164: str, form: CallerIdFormat, region: str) -> str:
    """`e164` as a trunk wants it: ``+33…``, ``33…`` or the national form of `region` (``06…``)."""
    if form is CallerIdFormat.E164_PLUS:
        return e164
    if form is CallerIdFormat.E164:
        return e164.lstrip("+")
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    if phonenumbers.region_code_for_number(parsed) != region.upper():
        return e164  # a foreign number has no national form here: international it stays
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return _SEPARATORS.sub("", national)
