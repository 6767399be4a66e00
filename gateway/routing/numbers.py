"""Phone numbers on the call path: which gateway number was dialled, and who is calling (SPEC R6, C3).

The dialled number is read from the Request-URI user, else the To user; trunks deliver it in E.164
with or without '+', with the '00' international prefix, or in the number's national form, so
`dialled_candidates` lists every E.164 form it may be and the router looks them all up in one query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.crm_bridge.identity import normalize_phone
from gateway.routing.model import NumberSpec
from gateway.routing.request import RouteRequest

RULE_FROM = "R6.from"
RULE_ANONYMOUS = "R6.anonymous"
RULE_ASSERTED = "R6.asserted_identity"
RULE_UNTRUSTED_ASSERTED = "R6.untrusted_asserted_ignored"
RULE_PRIVACY_ID = "R6.privacy_id"
RULE_UNPARSEABLE = "R6.unparseable"

# What trunks and phones put in From's user part when the caller hides or has no number
# (RFC 3323 §4.1.1.3 uses "anonymous"; carriers also send these).
ANONYMOUS_USERS = frozenset({"anonymous", "restricted", "withheld", "private", "unavailable", "unknown"})
ANONYMOUS_HOST = "anonymous.invalid"
#: Visual separators people and trunks write inside phone numbers.
SEPARATORS = re.compile(r"[\s().\-/]")


def dialled_candidates(request_user: str | None, to_user: str | None, regions: Iterable[str]) -> tuple[str, ...]:
    """Every E.164 number the dialled user may be, most likely first: the Request-URI user's forms, then To's.

    Per user: as written in international form ('+…'), after a '00' international prefix, in the national
    form of each of `regions` (ISO 3166 alpha-2, e.g. the numbers' default regions), then as E.164
    digits without '+'. Raises ValueError for a region phonenumbers does not know.
    """
    return dialled_candidates_of((request_user, to_user), regions)


def dialled_candidates_of(users: Iterable[str | None], regions: Iterable[str]) -> tuple[str, ...]:
    """`dialled_candidates` of any number of users, in order (a trunk's header order, SPEC T1)."""
    region_list = tuple(regions)
    forms: list[str] = []
    for user in users:
        if user:
            forms.extend(_e164_forms(user, region_list))
    return tuple(dict.fromkeys(forms))


def _e164_forms(user: str, regions: tuple[str, ...]) -> list[str]:
    digits = SEPARATORS.sub("", user.strip())
    written = [normalize_phone(user, "")]
    if digits.startswith("00"):
        written.append(normalize_phone("+" + digits[2:], ""))
    written.extend(normalize_phone(user, region) for region in regions)
    if digits.isdigit() and not digits.startswith("0"):
        written.append(normalize_phone("+" + digits, ""))
    return [form for form in written if form is not None]


def pick_number(candidates: Iterable[str], found: Iterable[NumberSpec]) -> NumberSpec | None:
    """Of the numbers a lookup `found` for `candidates`, the one matching the earliest candidate."""
    by_e164 = {number.e164: number for number in found}
    return next((by_e164[form] for form in candidates if form in by_e164), None)


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """Who is calling, as far as the CRM may use it (SPEC R6).

    `e164` is the caller's number when usable, None when anonymous, withheld or unparseable (`reason`
    says which; such a caller never creates a lead). `asserted_e164` is a trusted source's
    P-Asserted-Identity, kept for the call log even when the caller asked for privacy.
    """

    raw: str
    e164: str | None
    withheld: bool
    reason: str | None
    rule_ids: tuple[str, ...]
    asserted_e164: str | None = None

    @property
    def usable(self) -> bool:
        return self.e164 is not None


def caller_identity(request: RouteRequest, *, trusted: bool, region: str) -> CallerIdentity:
    """The caller of `request` by SPEC R6; `trusted`: its P-Asserted-Identity may be believed.

    National forms are read in `region` (the dialled number's default region).
    """
    raw = request.caller_user or request.caller_uri
    asserted = _asserted_e164(request.asserted, region) if trusted else None
    ignored = (RULE_UNTRUSTED_ASSERTED,) if request.asserted and not trusted else ()
    if _asks_privacy(request.privacy):
        return CallerIdentity(raw, None, True, "the caller withholds their identity (Privacy: id)",
                              (RULE_PRIVACY_ID, *ignored), asserted)
    if _is_anonymous(request):
        if asserted is not None:
            return CallerIdentity(raw, asserted, False, None, (RULE_ANONYMOUS, RULE_ASSERTED), asserted)
        return CallerIdentity(raw, None, True, "anonymous caller: From carries no number",
                              (RULE_ANONYMOUS, *ignored), asserted)
    own = normalize_phone(raw, region)
    if own is None:
        return CallerIdentity(raw, None, False, f"the caller's number {raw!r} is not a phone number",
                              (RULE_UNPARSEABLE,), asserted)
    return CallerIdentity(raw, own, False, None, (RULE_FROM,), asserted)


def _asks_privacy(privacy: str | None) -> bool:
    # RFC 3325 §9.3: "id" asks that the network-asserted identity be withheld.
    tokens = re.split(r"[;,\s]+", (privacy or "").lower())
    return "id" in tokens


def _is_anonymous(request: RouteRequest) -> bool:
    user = (request.caller_user or "").strip().lower()
    if user in ANONYMOUS_USERS:
        return True
    address = request.caller_uri.strip().lstrip("<")
    address = address.split(":", 1)[1] if ":" in address else address
    host = address.split("@", 1)[-1]
    return re.split(r"[;>:?]", host, maxsplit=1)[0].strip().lower() == ANONYMOUS_HOST


def _asserted_e164(asserted: str | None, region: str) -> str | None:
    """The first phone number among the P-Asserted-Identity values (a sip: and a tel: URI may both be there)."""
    for value in (asserted or "").split(","):
        text = value.strip()
        if "<" in text and text.endswith(">"):
            text = text[text.rindex("<") + 1:-1]
        number = normalize_phone(text, region) if text else None
        if number is not None:
            return number
    return None
