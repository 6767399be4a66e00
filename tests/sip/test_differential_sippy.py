"""Differential test: our parser against sippy 2.5.0's on the whole corpus (tests/sip/data/corpus).

For each message both parsers must agree on accept/reject and, when both accept, on the method or
status, Request-URI, Call-ID, CSeq, From/To tags, Via count, top branch and body. Where they
disagree for a reason the RFC decides, the case is listed in KNOWN_DIFFERENCES; the test also fails
when a listed case stops differing, so the table cannot go stale.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.message import Request
from gateway.sip.parser import parse_message
from gateway.sip.uri import parse_uri
from tests.sip.data import CorpusCase, load_corpus

SipRequest = pytest.importorskip("sippy.SipRequest").SipRequest
SipResponse = pytest.importorskip("sippy.SipResponse").SipResponse

# case name -> why the two parsers rightly disagree ("sippy accepts" = sippy is too lenient).
KNOWN_DIFFERENCES: dict[str, str] = {
    "bad_bare_cr_in_header": "sippy accepts; a bare CR is no line end and no header character (RFC 3261 §7.3.1, §25.1)",
    "bad_big_status_code": "sippy accepts; Status-Code is 3DIGIT (RFC 3261 §7.2, §25.1; RFC 4475 §3.1.2.20)",
    "bad_cseq_method_mismatch": "sippy accepts; CSeq method MUST match the request (RFC 3261 §8.1.1.5; RFC 4475 §3.1.2.15)",
    "bad_unknown_method_mismatch": "sippy accepts; CSeq method MUST match (RFC 3261 §8.1.1.5; RFC 4475 §3.1.2.16)",
    "bad_cseq_too_large": "sippy accepts; the CSeq number MUST be below 2**31 (RFC 3261 §8.1.1.5)",
    "bad_max_forwards_too_large": "sippy accepts; CSeq < 2**31 and Max-Forwards 0-255 (RFC 3261 §8.1.1.5, §20.22; RFC 4475 §3.1.2.4)",
    "bad_negative_content_length": "sippy accepts; Content-Length is 1*DIGIT (RFC 3261 §20.14; RFC 4475 §3.1.2.5)",
    "bad_no_blank_line": "sippy accepts; the empty line MUST be present even without a body (RFC 3261 §7.5)",
    "bad_request_line_multiple_sp": "sippy accepts; elements are separated by single SP (RFC 3261 §7.1; RFC 4475 §3.1.2.12)",
    "bad_request_line_trailing_sp": "sippy accepts; no SP after SIP-Version (RFC 3261 §7.1; RFC 4475 §3.1.2.13)",
    "bad_ruri_bad_port": "sippy accepts port 70000; port is a 16-bit number (RFC 3261 §19.1.1, RFC 3986 §3.2.3)",
    "bad_ruri_too_long": "sippy accepts; we answer 414 past 2048 characters (RFC 3261 §21.4.12, local policy)",
    "bad_two_call_ids": "sippy takes the first; single-valued header twice (RFC 3261 §7.3.1; RFC 4475 §3.1.2.19)",
    "bad_two_cseqs": "sippy takes the first; single-valued header twice (RFC 3261 §7.3.1; RFC 4475 §3.1.2.19)",
    "bad_version_7": "sippy accepts SIP/7.0; we answer 505 (RFC 3261 §21.5.6; RFC 4475 §3.1.2.14)",
    "bad_version_response": "sippy accepts SIP/3.0 responses; we drop them (RFC 3261 §7.1, §21.5.6)",
    "valid_novel_scheme_to": "sippy rejects; an unknown scheme in To is legal (RFC 3261 §8.2.2.1 is about the R-URI only; RFC 4475 §3.1.1.11)",
    "valid_tel_uri": "sippy has no tel: support; tel URIs are valid Request-URIs (RFC 3966, RFC 3261 §19.1.6)",
    "valid_tortuous": "sippy fails on LWS around '/' and ':' in Via and folded tag params, all legal (RFC 3261 §25.1; RFC 4475 §3.1.1.1)",
}

CORPUS = load_corpus()


def _sippy_view(data: bytes) -> dict[str, object] | None:
    """What sippy makes of the datagram, or None when it rejects it (any exception counts)."""
    text = data.decode("utf-8", "surrogateescape").lstrip("\r\n")
    with contextlib.redirect_stdout(io.StringIO()):  # sippy prints its body-length fix-ups
        try:
            if text[:4].upper() == "SIP/":
                message = SipResponse(text)
                start: tuple[object, ...] = (message.scode,)
            else:
                message = SipRequest(text)
                start = (message.method, _uri(str(message.getRURI())))
            number, method = message.getHFBody("cseq").getCSeq()
            vias = message.getHFBodys("via")
            return {
                "start": start, "call_id": str(message.getHFBody("call-id")), "cseq": (int(number), method),
                "from_tag": message.getHFBody("from").getTag(), "to_tag": message.getHFBody("to").getTag(),
                "vias": len(vias), "branch": vias[0].getBranch(),
                "body": str(message.body) if message.body is not None else "",
            }
        except Exception:  # sippy signals bad input with assorted exception types
            return None


def _our_view(data: bytes) -> dict[str, object] | None:
    try:
        message = parse_message(data)
    except RemoteProtocolError:
        return None
    start = (message.method, _uri(message.uri)) if isinstance(message, Request) else (message.status,)
    return {
        "start": start, "call_id": message.call_id, "cseq": message.cseq, "from_tag": message.from_tag,
        "to_tag": message.to_tag, "vias": len(message.vias), "branch": message.top_via.branch,
        "body": message.body.decode("utf-8", "surrogateescape"),
    }


def _uri(text: str) -> object:
    """Compare Request-URIs as parsed values: sippy re-orders parameters when it prints a URI."""
    try:
        return parse_uri(text)
    except RemoteProtocolError:
        return text


def test_corpus_has_at_least_fifty_messages() -> None:
    assert len(CORPUS) >= 50


def test_known_differences_name_real_cases() -> None:
    assert set(KNOWN_DIFFERENCES) <= {case.name for case in CORPUS}


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_same_verdict_and_fields_as_sippy(case: CorpusCase) -> None:
    ours, theirs = _our_view(case.data), _sippy_view(case.data)
    if case.name in KNOWN_DIFFERENCES:
        assert (ours is None) != (theirs is None), f"no longer differs: {KNOWN_DIFFERENCES[case.name]}"
        assert (ours is None) == (case.expect is not None)
    else:
        assert ours == theirs
