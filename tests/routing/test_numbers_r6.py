"""The dialled number's E.164 forms (issue 10 item 4) and the caller's usable number (SPEC R6)."""

from __future__ import annotations

import pytest

from gateway.routing import CallerIdentity, NumberSpec, caller_identity, dialled_candidates, pick_number
from gateway.routing.numbers import (
    RULE_ANONYMOUS,
    RULE_ASSERTED,
    RULE_FROM,
    RULE_PRIVACY_ID,
    RULE_UNPARSEABLE,
    RULE_UNTRUSTED_ASSERTED,
)
from tests.routing.builders import request

PARIS = "+33142685300"


@pytest.mark.parametrize("dialled", ["+33142685300", "33142685300", "0033142685300", "0142685300",
                                     "01 42 68 53 00", "+33 1 42 68 53 00"])
def test_r1_dialled_number_in_any_usual_form_gives_its_e164(dialled: str) -> None:
    assert PARIS in dialled_candidates(dialled, None, ["FR"])


def test_r1_e164_as_written_comes_before_other_readings() -> None:
    assert dialled_candidates("+33142685300", None, ["FR", "DE"])[0] == PARIS
    assert dialled_candidates("0033142685300", None, ["DE"])[0] == PARIS


def test_r1_national_form_is_read_in_each_region_given() -> None:
    assert dialled_candidates("0142685300", None, ["FR", "DE"]) == ("+33142685300", "+49142685300")
    assert dialled_candidates("0142685300", None, []) == ()


def test_r1_request_uri_user_first_then_to_user() -> None:
    candidates = dialled_candidates("+33142685300", "+33155555555", ["FR"])
    assert candidates[0] == PARIS
    assert "+33155555555" in candidates
    assert dialled_candidates(None, "0142685300", ["FR"]) == (PARIS,)


def test_r1_an_extension_or_a_name_is_no_number() -> None:
    assert dialled_candidates("1001", "alice", ["FR"]) == ()
    assert dialled_candidates(None, None, ["FR"]) == ()


def test_r1_an_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="ISO 3166"):
        dialled_candidates("0142685300", None, ["XX"])


def test_r1_pick_number_takes_the_number_of_the_earliest_candidate() -> None:
    paris = NumberSpec(1, PARIS, "FR", None)
    berlin = NumberSpec(2, "+49142685300", "DE", None)
    candidates = dialled_candidates("0142685300", None, ["FR", "DE"])
    assert pick_number(candidates, [berlin, paris]) is paris
    assert pick_number(candidates, [berlin]) is berlin
    assert pick_number(candidates, []) is None


def identity(trusted: bool = True, **fields: str | None) -> CallerIdentity:
    return caller_identity(request(**fields), trusted=trusted, region="FR")


def test_r6_the_caller_is_the_number_in_from() -> None:
    caller = identity()
    assert (caller.e164, caller.withheld, caller.reason, caller.rule_ids) == ("+33612345678", False, None, (RULE_FROM,))
    assert caller.usable


def test_r6_a_national_from_is_read_in_the_numbers_region() -> None:
    assert identity(caller_user="0612345678", caller_uri="sip:0612345678@trunk").e164 == "+33612345678"


def test_r6_a_tel_from_without_user_part_is_read_from_the_uri() -> None:
    assert identity(caller_user=None, caller_uri="tel:+33612345678").e164 == "+33612345678"


@pytest.mark.parametrize(("user", "uri"), [
    ("anonymous", "sip:anonymous@anonymous.invalid"),
    ("Anonymous", "sip:Anonymous@trunk.example"),
    ("restricted", "sip:restricted@trunk.example"),
    (None, "sip:anonymous.invalid"),
    ("+33612345678", "sip:+33612345678@anonymous.invalid"),
])
def test_r6_anonymous_from_has_no_usable_number(user: str | None, uri: str) -> None:
    caller = identity(caller_user=user, caller_uri=uri)
    assert (caller.e164, caller.withheld, caller.rule_ids) == (None, True, (RULE_ANONYMOUS,))
    assert caller.reason is not None and "anonymous" in caller.reason
    assert not caller.usable


def test_r6_trusted_asserted_identity_is_the_caller_when_from_is_anonymous() -> None:
    caller = identity(caller_user="anonymous", caller_uri="sip:anonymous@anonymous.invalid",
                      asserted="<sip:+33612345678@trunk.example;user=phone>")
    assert (caller.e164, caller.withheld, caller.rule_ids) == ("+33612345678", False, (RULE_ANONYMOUS, RULE_ASSERTED))


def test_r6_asserted_identity_values_are_tried_in_turn() -> None:
    caller = identity(caller_user="anonymous", asserted='"Bob" <sip:bob@trunk.example>, <tel:0612345678>')
    assert caller.e164 == "+33612345678"


def test_r6_untrusted_asserted_identity_is_ignored() -> None:
    caller = identity(trusted=False, caller_user="anonymous", asserted="<sip:+33612345678@evil.example>")
    assert (caller.e164, caller.asserted_e164, caller.withheld) == (None, None, True)
    assert caller.rule_ids == (RULE_ANONYMOUS, RULE_UNTRUSTED_ASSERTED)


def test_r6_from_wins_over_an_asserted_identity_when_it_has_a_number() -> None:
    caller = identity(asserted="<sip:+33699999999@trunk.example>")
    assert (caller.e164, caller.asserted_e164) == ("+33612345678", "+33699999999")


@pytest.mark.parametrize("privacy", ["id", "ID", "id;user", "header; id", "critical,id"])
def test_r6_privacy_id_withholds_the_caller_and_keeps_the_asserted_number_for_the_log(privacy: str) -> None:
    caller = identity(caller_user="anonymous", asserted="<sip:+33612345678@trunk.example>", privacy=privacy)
    assert (caller.e164, caller.withheld, caller.asserted_e164) == (None, True, "+33612345678")
    assert caller.rule_ids == (RULE_PRIVACY_ID,)
    assert caller.reason is not None and "Privacy: id" in caller.reason


def test_r6_privacy_id_withholds_a_from_number_all_the_same() -> None:
    assert identity(privacy="id").e164 is None


def test_r6_privacy_none_changes_nothing() -> None:
    assert identity(privacy="none").e164 == "+33612345678"


@pytest.mark.parametrize("user", ["alice", "12", "1-800-FLOWERS", ""])
def test_r6_unparseable_from_has_no_usable_number_and_says_why(user: str) -> None:
    caller = identity(caller_user=user, caller_uri=f"sip:{user}@pbx.example")
    assert (caller.e164, caller.withheld, caller.rule_ids) == (None, False, (RULE_UNPARSEABLE,))
    assert caller.reason is not None and "not a phone number" in caller.reason


def test_r6_privacy_id_from_an_anonymous_caller_without_asserted_identity_is_withheld_for_privacy() -> None:
    caller = identity(caller_user="anonymous", caller_uri="sip:anonymous@anonymous.invalid", privacy="id")
    assert (caller.e164, caller.asserted_e164, caller.rule_ids) == (None, None, (RULE_PRIVACY_ID,))


def test_r6_untrusted_asserted_identity_under_privacy_is_not_kept_for_the_log() -> None:
    caller = identity(trusted=False, asserted="<sip:+33612345678@evil.example>", privacy="id")
    assert caller.asserted_e164 is None
    assert caller.rule_ids == (RULE_PRIVACY_ID, RULE_UNTRUSTED_ASSERTED)
