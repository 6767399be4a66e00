"""Party identity: phones in E.164 (SPEC C3), emails normalised (SPEC O5)."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.crm_bridge.identity import is_known_region, normalize_email, normalize_phone

PARIS = "+33142685300"


@pytest.mark.parametrize(
    "raw",
    [
        "01 42 68 53 00",
        "0142685300",
        "+33 1 42 68 53 00",
        "+33142685300",
        "0033 1 42 68 53 00",
        "+33 (0)1 42.68.53.00",
        "01-42-68-53-00",
        "(01) 42 68 53 00",
        "  01 42 68 53 00  ",
    ],
)
def test_c3_national_and_international_forms_give_one_e164(raw: str) -> None:
    assert normalize_phone(raw, "FR") == PARIS


@pytest.mark.parametrize(
    "raw",
    [
        "01 42 68 53 00;ext=12",
        "01 42 68 53 00 ext. 12",
        "01 42 68 53 00 ext 12",
        "01 42 68 53 00 x123",
        "01 42 68 53 00 X 123",
        "01 42 68 53 00#123",
        "+33 1 42 68 53 00 extension 5",
    ],
)
def test_c3_extensions_are_not_part_of_the_number(raw: str) -> None:
    assert normalize_phone(raw, "FR") == PARIS


@pytest.mark.parametrize(
    "raw",
    [
        "sip:+33142685300@gw.example.net;user=phone",
        "sips:0142685300@pbx.local:5061",
        "SIP:+33142685300@host",
        "tel:+33-1-42-68-53-00",
        "tel:+33-1-42-68-53-00;ext=45;phone-context=example.com",
    ],
)
def test_c3_sip_and_tel_uris_contribute_their_user_part(raw: str) -> None:
    assert normalize_phone(raw, "FR") == PARIS


def test_c3_the_default_region_reads_national_forms() -> None:
    assert normalize_phone("(650) 253-0000", "US") == "+16502530000"
    assert normalize_phone("(650) 253-0000", "us") == "+16502530000"
    assert normalize_phone("06 12 34 56 78", "FR") == "+33612345678"
    assert normalize_phone("02 1234 5678", "IT") == "+390212345678"
    assert normalize_phone("+48 22 123 45 67", "FR") == "+48221234567"
    assert normalize_phone("0142685300", "") is None
    assert normalize_phone("+33142685300", "") == PARIS


@pytest.mark.parametrize(
    "raw", ["", "   ", "hello", "101", "12", "1-800-FLOWERS", "sip:alice@example.com", "tel:", "+", "++33",
            "01 42 68 53 00 hello", "0142685300@", "+33 1 42 68 53 00 00 00 00 00"],
)
def test_c3_garbage_is_not_a_phone_number(raw: str) -> None:
    assert normalize_phone(raw, "FR") is None


def test_unknown_default_region_is_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match="ISO 3166"):
        normalize_phone("0142685300", "XX")
    assert is_known_region("fr") and not is_known_region("XX")


@given(st.text(max_size=40))
def test_normalize_phone_never_raises_and_returns_e164_or_none(raw: str) -> None:
    result = normalize_phone(raw, "FR")
    if result is not None:
        assert result.startswith("+") and result[1:].isdigit()
        assert normalize_phone(result, "FR") == result


@given(st.sampled_from(["FR", "US", "IT", "PL", "DE", "GB"]), st.integers(min_value=0, max_value=10**9))
def test_c3_national_format_round_trips_to_the_same_e164(region: str, seed: int) -> None:
    example = phonenumbers.example_number(region)
    assert example is not None
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    assert normalize_phone(national, region) == e164
    assert normalize_phone(international, "FR" if seed % 2 else "US") == e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("anna@example.fr", "anna@example.fr"),
        ("  Anna@Example.FR  ", "anna@example.fr"),
        ("Anna Smith <Anna@Example.FR>", "anna@example.fr"),
        ('"Smith, Anna" <anna@example.fr>', "anna@example.fr"),
        ("<anna@example.fr>", "anna@example.fr"),
        ("mailto:anna@example.fr", "anna@example.fr"),
        ("anna+crm@mail.example.fr.", "anna+crm@mail.example.fr"),
        ("postmaster@localhost", "postmaster@localhost"),
    ],
)
def test_o5_same_mailbox_written_differently_is_one_address(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "anna", "anna@", "@example.fr", "anna smith@example.fr", "anna@example..fr",
            "a@b.fr, c@d.fr", "anna@-example.fr", "Anna <>", "anna@exa mple.fr"],
)
def test_o5_not_an_address_gives_none(raw: str) -> None:
    assert normalize_email(raw) is None


@given(st.text(max_size=40))
def test_normalize_email_is_idempotent(raw: str) -> None:
    once = normalize_email(raw)
    if once is not None:
        assert normalize_email(once) == once
