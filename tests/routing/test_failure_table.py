"""Routing's failure table and hunting policy (what the caller hears; which failures hunt on)."""

from __future__ import annotations

import pytest

from gateway.routing.failure import HUNT_ON, best_failure, failure_status


@pytest.mark.parametrize(
    ("leg_b", "leg_a"),
    [(302, 480), (401, 502), (407, 502), (408, 408), (486, 486), (404, 404), (603, 603), (500, 502), (503, 502)],
)
def test_failure_table_maps_leg_b_to_what_the_caller_hears(leg_b: int, leg_a: int) -> None:
    assert failure_status(leg_b) == leg_a


def test_busy_and_decline_end_the_hunt_unavailable_and_server_errors_move_on() -> None:
    assert {486, 603, 404}.isdisjoint(HUNT_ON)
    assert {408, 480, 500, 503}.issubset(HUNT_ON)


def test_best_failure_prefers_a_decline_then_the_callees_own_answer_then_480_then_408() -> None:
    assert best_failure([(408, True, None), (603, False, None), (486, False, None)])[0] == 603
    assert best_failure([(408, True, None), (486, False, None), (480, True, None)])[0] == 486
    assert best_failure([(408, True, None), (480, True, None)])[0] == 480
    assert best_failure([(502, True, None), (408, True, None)])[0] == 408
    assert best_failure([]) == (480, None)
