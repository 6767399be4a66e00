"""Static routing (issue #2): a pure function from the dialled user, the table and the bindings."""

from __future__ import annotations

import re

from gateway.config import StaticRoute
from gateway.routing import decide, explain
from gateway.routing.static import RULE_NO_MATCH, RULE_NO_USER, RULE_NOT_REGISTERED

TRUNK = StaticRoute("to-trunk", re.compile(r"^0\d+$"), "sip:127.0.0.1:5090")
PHONES = StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")
CATCH_ALL = StaticRoute("catch-all", re.compile(r".*"), "sip:fallback.example:5060")


def test_first_matching_rule_wins_and_names_itself() -> None:
    decision = decide("0601020304", [TRUNK, PHONES, CATCH_ALL], {})
    assert (decision.uris, decision.status, decision.rule_ids) == (("sip:127.0.0.1:5090",), None, ("to-trunk",))
    assert decision.forwards


def test_match_is_a_search_so_an_anchored_prefix_routes_longer_users() -> None:
    """`match` is a regex on the user part with search semantics: `^555` routes 5551 (issue example)."""
    prefix = StaticRoute("prefix-555", re.compile(r"^555"), "sip:pbx.example")
    assert decide("5551", [prefix], {}).uris == ("sip:pbx.example",)
    assert decide("555", [prefix], {}).rule_ids == ("prefix-555",)
    assert decide("1555", [prefix], {}).status == 404


def test_unanchored_match_finds_the_pattern_anywhere_in_the_user() -> None:
    unanchored = StaticRoute("has-1xxx", re.compile(r"1\d{3}"), "sip:pbx.example")
    assert decide("10010", [unanchored], {}).uris == ("sip:pbx.example",)
    assert decide("99100299", [unanchored], {}).uris == ("sip:pbx.example",)
    assert decide("10", [unanchored], {}).status == 404


def test_anchors_mean_what_they_mean_a_fully_anchored_rule_matches_only_the_whole_user() -> None:
    assert decide("10010", [PHONES], {}).rule_ids == (RULE_NO_MATCH,)
    assert decide("01001", [PHONES], {}).rule_ids == (RULE_NO_MATCH,)
    assert decide("1001", [PHONES], {"1001": ["sip:1001@10.0.0.2"]}).uris == ("sip:1001@10.0.0.2",)
    suffix = StaticRoute("ends-99", re.compile(r"99$"), "sip:pbx.example")
    assert decide("0199", [suffix], {}).forwards and not decide("9901", [suffix], {}).forwards


def test_registered_target_hunts_through_the_bindings_in_order() -> None:
    bindings = {"1001": ["sip:1001@10.0.0.2:5062", "sip:1001@10.0.0.3:5060"]}
    decision = decide("1001", [PHONES], bindings)
    assert decision.uris == ("sip:1001@10.0.0.2:5062", "sip:1001@10.0.0.3:5060")
    assert decision.rule_ids == ("phones",)


def test_registered_target_without_a_binding_is_480() -> None:
    decision = decide("1002", [PHONES, CATCH_ALL], {"1001": ["sip:1001@10.0.0.2"]})
    assert decision.status == 480
    assert decision.rule_ids == ("phones", RULE_NOT_REGISTERED)
    assert not decision.forwards


def test_no_matching_rule_is_404() -> None:
    decision = decide("999", [TRUNK, PHONES], {})
    assert (decision.targets, decision.status, decision.rule_ids) == ((), 404, (RULE_NO_MATCH,))


def test_request_uri_without_user_is_404() -> None:
    assert decide(None, [CATCH_ALL], {}).rule_ids == (RULE_NO_USER,)
    assert decide("", [CATCH_ALL], {}).status == 404


def test_explain_names_outcome_and_rules() -> None:
    assert explain(decide("0601", [TRUNK], {})) == "ring uri sip:127.0.0.1:5090 (rules: to-trunk)"
    assert explain(decide("1005", [PHONES], {})) == f"reject 480 (rules: phones → {RULE_NOT_REGISTERED})"
