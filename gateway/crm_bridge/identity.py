"""Party identity: phone numbers to E.164 (SPEC C3) and email addresses to one comparable form (SPEC O5).

Both functions are pure and return None for input that is not a phone number / an address, so a
caller can store the raw value and simply skip matching when the normalised one is missing.

Email decision: the whole address is lower-cased, local part included. RFC 5321 §2.4 lets a server
treat local parts case-sensitively, but the providers our clients use do not, and two CRM records for
"Anna@x.fr" and "anna@x.fr" would be the duplicate O5 forbids. Lower-casing (not `casefold`) keeps
non-ASCII local parts as written apart from case ("ß" stays "ß").
"""

from __future__ import annotations

import functools
import re

import phonenumbers

# Extensions are not part of the line (C3 compares lines): ";ext=12" (RFC 3966), "#12", "x12",
# "ext 12", "ext. 12", "extension 12".
_EXTENSION = re.compile(r"(;\s*ext\s*=.*|#.*|\s*(?:ext(?:ension)?\.?|x)\s*\d+\s*)$", re.IGNORECASE)
# Anything else than digits, a leading plus and the usual separators means "not a phone number":
# vanity letters ("1-800-FLOWERS") are not accepted as a client's number.
_DIALLABLE = re.compile(r"\+?[\d\s().\-/]+")
_URI_SCHEMES = ("sips:", "sip:", "tel:")
# No region: only numbers written in international form can be parsed.
_NO_REGION = {"", "ZZ"}


def is_known_region(code: str) -> bool:
    """True when `code` is an ISO 3166 alpha-2 region phonenumbers has a numbering plan for."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


def _uri_user_part(raw: str) -> str:
    text = raw.strip()
    lowered = text.lower()
    for scheme in _URI_SCHEMES:
        if lowered.startswith(scheme):
            text = text[len(scheme):]
            # RFC 3261 §19.1.1: the user part ends at '@'; RFC 3966 parameters (other than ext) are
            # not part of the number.
            text = text.split("@", 1)[0]
            ext = re.search(r";\s*ext\s*=\s*\S*", text, re.IGNORECASE)
            text = text.split(";", 1)[0] + (ext.group(0) if ext else "")
            break
    return text


def normalize_phone(raw: str, default_region: str) -> str | None:
    """`raw` in E.164 ("+33142685300"), or None when it is not a phone number.

    National forms are read in `default_region` (the number's region, ISO 3166 alpha-2); international
    forms ("+33…", "0033…" from FR) give the same result. Extensions, spaces, dots, dashes, slashes and
    parentheses are ignored; sip:/sips:/tel: URIs contribute their user part. Raises ValueError when
    `default_region` is not a known region ("" or "ZZ" mean none: international forms only).
    """
    region = (default_region or "").upper()
    if region not in _NO_REGION and not is_known_region(region):
        raise ValueError(f"default region must be an ISO 3166 alpha-2 code such as 'FR'; got {default_region!r}")
    if not isinstance(raw, str):
        return None
    return _normalized(raw, region)


@functools.lru_cache(maxsize=8192)
def _normalized(raw: str, region: str) -> str | None:
    # Cached: one call asks for its caller's and its number's forms several times (identity, routing,
    # the CRM decision), and phonenumbers' parse is the dearest step of routing a call.
    text = _EXTENSION.sub("", _uri_user_part(raw)).strip()
    if not text or not _DIALLABLE.fullmatch(text) or sum(ch.isdigit() for ch in text) < 3:
        return None
    try:
        number = phonenumbers.parse(text, None if region in _NO_REGION else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_LOCAL_PART = re.compile(r"[^\s@<>()\[\],;:\"\\]+")
_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]*[^\W_])?)(?:\.[^\W_](?:[\w-]*[^\W_])?)*", re.UNICODE)


def normalize_email(raw: str) -> str | None:
    """`raw` as one comparable address ("anna@example.fr"), or None when it is not an address.

    Trims, drops a display name ("Anna <anna@x.fr>") and a "mailto:" prefix, lower-cases the whole
    address (see the module docstring). One address only: a list is not an address.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1:-1].strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:"):]
    local, at, domain = text.rpartition("@")
    if not at or not _LOCAL_PART.fullmatch(local) or len(local) > 64:
        return None
    domain = domain.rstrip(".")
    if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
        return None
    return f"{local}@{domain}".lower()
