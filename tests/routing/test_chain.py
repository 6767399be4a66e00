"""SPEC R3: a no-answer chain that loops is refused when it is configured."""

from __future__ import annotations

from gateway.routing.chain import find_chain_loop


def test_r3_chain_ending_at_a_hang_up_has_no_loop() -> None:
    assert find_chain_loop(1, {1: 2, 2: None}) is None
    assert find_chain_loop(1, {}) is None


def test_r3_chain_back_to_itself_is_a_loop() -> None:
    assert find_chain_loop(1, {1: 1}) == (1, 1)


def test_r3_loop_further_down_the_chain_is_found_and_shown_as_a_path() -> None:
    assert find_chain_loop(1, {1: 2, 2: 3, 3: 2}) == (2, 3, 2)
