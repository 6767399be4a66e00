"""A gateway number's E.164 form, the key the call path finds the number by (one indexed lookup)."""

from __future__ import annotations

import phonenumbers


def number_e164(number: str, default_region: str) -> str | None:
    """`number` in E.164 ("+33184880000") when it is a valid phone number read in `default_region`
    (national forms) or international form; None otherwise (unparseable, impossible or unassigned)."""
    try:
        parsed = phonenumbers.parse(number, (default_region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
