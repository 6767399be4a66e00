"""The routing model refuses what cannot be routed, and the draft keeps rule ids and employees straight."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.routing import (
    MemberSpec,
    NoAnswer,
    NumberSpec,
    RingStep,
    Target,
    caller_identity,
    dialled_candidates,
    route,
)
from gateway.routing.draft import Draft
from gateway.routing.model import DEFAULT_RESPONSIBLE_RING_TIME
from tests.routing.builders import group, inputs, request

E164 = re.compile(r"\+[1-9]\d{5,14}")


def test_r1_a_number_rings_the_responsible_20_s_by_default() -> None:
    assert NumberSpec(1, "+33142685300", "FR", None).responsible_ring_time == DEFAULT_RESPONSIBLE_RING_TIME == 20.0


@pytest.mark.parametrize("ring_time", [0.0, -5.0, float("nan")])
def test_r1_a_numbers_responsible_ring_time_must_be_positive(ring_time: float) -> None:
    with pytest.raises(ValueError, match=r"\+33142685300"):
        NumberSpec(1, "+33142685300", "FR", None, responsible_ring_time=ring_time)


def test_r2_members_by_position_with_equal_positions_ordered_by_employee_id() -> None:
    spec = group(members=(9, 7))
    tied = type(spec)(spec.id, spec.name, spec.strategy, spec.ring_time,
                      (MemberSpec(9, 1), MemberSpec(7, 1), MemberSpec(8, 0)), NoAnswer.hangup())
    assert [m.employee_id for m in tied.by_position] == [8, 7, 9]


def test_r1_draft_adds_each_rule_id_once_where_it_first_appeared() -> None:
    draft = Draft().add(rule_ids=("R1", "R2")).add(rule_ids=("R3.busy", "R2", "R1"), notes=("a",))
    assert draft.rule_ids == ("R1", "R2", "R3.busy")
    assert draft.notes == ("a",)


def test_r1_draft_knows_which_employees_it_rings_already() -> None:
    steps = (RingStep((Target.employee(4, "1004"), Target.outside("+33612345678", "")), 10.0, ("x",)),
             RingStep((Target.employee(6, "1006"),), None, ("y",)))
    assert Draft().add(steps=steps).rung == frozenset({4, 6})


def test_r1_route_is_a_pure_function_of_its_inputs() -> None:
    call = inputs(last_offer={7: 1.0})
    assert route(call) == route(call)


@given(st.text(max_size=30), st.one_of(st.none(), st.text(max_size=30)))
def test_r1_dialled_candidates_are_e164_and_unique_whatever_the_user(request_user: str, to_user: str | None) -> None:
    candidates = dialled_candidates(request_user, to_user, ["FR", "US"])
    assert all(E164.fullmatch(form) for form in candidates)
    assert len(set(candidates)) == len(candidates)


@given(
    user=st.one_of(st.none(), st.text(max_size=20)),
    asserted=st.one_of(st.none(), st.text(max_size=40)),
    privacy=st.one_of(st.none(), st.sampled_from(["id", "none", "user", "header;id"]), st.text(max_size=10)),
    trusted=st.booleans(),
)
def test_r6_caller_identity_never_raises_and_a_withheld_caller_has_no_number(
    user: str | None, asserted: str | None, privacy: str | None, trusted: bool
) -> None:
    caller = caller_identity(request(caller_user=user, caller_uri=f"sip:{user}@h", asserted=asserted, privacy=privacy),
                             trusted=trusted, region="FR")
    assert caller.rule_ids
    assert caller.usable == (caller.e164 is not None)
    assert caller.e164 is None or E164.fullmatch(caller.e164)
    if caller.withheld or not caller.usable:
        assert caller.e164 is None and caller.reason
    if not trusted:
        assert caller.asserted_e164 is None
