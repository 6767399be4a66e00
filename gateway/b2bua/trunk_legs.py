"""What a leg B towards a trunk carries that other legs do not (SPEC R4): our caller ID instead of the
caller's, and the answer to the trunk's digest challenge."""

from __future__ import annotations

import logging
import secrets

from gateway.routing.targets import Target
from gateway.sip.auth import build_authorization
from gateway.sip.errors import RemoteProtocolError
from gateway.sip.message import Response
from gateway.sip.uri import parse_uri

log = logging.getLogger(__name__)


def caller_id_uri(target: Target, target_uri: str) -> str | None:
    """Our caller ID at the trunk's host (what providers expect in From); None when the target has none."""
    if not target.caller_id:
        return None
    try:
        host = parse_uri(target_uri).host
    except RemoteProtocolError:
        host = "invalid"
    host = f"[{host}]" if ":" in host else host
    return f"<sip:{target.caller_id}@{host}>"


def challenge_answer(
    response: Response, request_uri: str, credentials: tuple[str, str], trunk_id: int
) -> tuple[str, str] | None:
    """The (header, value) answering a 401/407 to an INVITE of `request_uri`; None when the challenge
    cannot be answered (none given, not digest, an algorithm we lack)."""
    challenge = response.get("WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate")
    if challenge is None:
        return None
    try:
        value = build_authorization(challenge, method="INVITE", uri=request_uri, username=credentials[0],
                                    password=credentials[1], cnonce=secrets.token_hex(8))
    except RemoteProtocolError as error:
        log.warning("trunk %s: cannot answer its challenge: %s", trunk_id, error)
        return None
    return ("Authorization" if response.status == 401 else "Proxy-Authorization"), value
