"""Requests outside any call: 405 with an Allow that tells the truth (RFC 3261 §20.5, §21.4.6), 481 for
dialog-only methods (§15.1.2, §12.2.2) and 420 for unsupported extensions (§8.2.2.3), OPTIONS included.
Real sans-IO endpoints in memory."""

from __future__ import annotations

import re

import pytest

from gateway.config import StaticRoute
from gateway.sip.message import Request, Response
from tests.b2bua.harness import GW, SDP_B, Network, Phone, make_gateway

ROUTES = [StaticRoute("to-bob", re.compile(r"^2\d{3}$"), "sip:10.0.0.2:5062")]


@pytest.fixture
def alice() -> Phone:
    net = Network()
    make_gateway(net, ROUTES)
    return Phone(net, "10.0.0.1", 5061, "alice")


def _send(phone: Phone, method: str, extra: list[tuple[str, str]] | None = None, to_tag: str = "") -> Response:
    to = f"<sip:2000@{GW[0]}>" + (f";tag={to_tag}" if to_tag else "")
    request = Request(method, f"sip:2000@{GW[0]}", [
        ("From", "<sip:alice@10.0.0.1>;tag=o1"), ("To", to), ("Call-ID", f"ood-{method}-{to_tag}"),
        ("CSeq", f"1 {method}"), ("Contact", "<sip:alice@10.0.0.1:5061>"), *(extra or []),
    ])
    before = len(phone.finals(method))
    phone.send(request)
    finals = [r for r in phone.responses(method) if r.status >= 200]
    assert len(finals) == before + 1
    return finals[-1]


def _allowed(response: Response) -> set[str]:
    return {method.strip() for method in (response.get("Allow") or "").split(",") if method.strip()}


# REFER outside a dialog is a transfer from a phone in no call: 481 (tests/b2bua/test_transfer.py, R5).
@pytest.mark.parametrize("method", ["MESSAGE", "SUBSCRIBE", "PUBLISH", "PRACK", "NOTIFY"])
def test_405_outside_a_dialog_never_allows_the_refused_method(alice: Phone, method: str) -> None:
    response = _send(alice, method)
    assert response.status == 405
    allowed = _allowed(response)
    assert method not in allowed
    assert {"INVITE", "OPTIONS", "REGISTER"} <= allowed


def test_every_method_the_out_of_dialog_allow_names_is_accepted(alice: Phone) -> None:
    """§20.5: what Allow lists (OPTIONS answer and 405 alike) is never answered 405 itself."""
    listed = _allowed(_send(alice, "OPTIONS"))
    assert listed == _allowed(_send(alice, "MESSAGE"))
    for method in listed - {"ACK", "CANCEL", "INVITE"}:  # ACK/CANCEL have no answer of their own here
        assert _send(alice, method).status != 405, method
    assert "MESSAGE" not in listed and "INFO" not in listed and "BYE" not in listed


@pytest.mark.parametrize("method", ["BYE", "INFO", "UPDATE"])
def test_dialog_only_request_without_to_tag_is_481(alice: Phone, method: str) -> None:
    response = _send(alice, method)
    assert response.status == 481 and response.to_tag is not None


@pytest.mark.parametrize("method", ["BYE", "INFO", "UPDATE", "MESSAGE"])
def test_request_for_an_unknown_dialog_is_481(alice: Phone, method: str) -> None:
    assert _send(alice, method, to_tag="nosuchdialog").status == 481


def test_options_to_the_gateway_requiring_an_unknown_extension_is_420(alice: Phone) -> None:
    response = _send(alice, "OPTIONS", [("Require", "foo, 100rel")])
    assert response.status == 420
    assert [tag.strip() for tag in (response.get("Unsupported") or "").split(",")] == ["foo", "100rel"]


def test_in_dialog_405_allows_exactly_what_is_relayed(alice: Phone) -> None:
    bob = Phone(alice.network, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(200, SDP_B)
    alice.ack()
    alice.send_in_dialog("SUBSCRIBE")
    [response] = alice.responses("SUBSCRIBE")
    allowed = _allowed(response)
    assert response.status == 405 and "SUBSCRIBE" not in allowed and "REGISTER" not in allowed
    for method in ("BYE", "UPDATE", "INFO", "MESSAGE", "OPTIONS"):
        assert method in allowed
    for method in ("INFO", "MESSAGE", "OPTIONS", "UPDATE"):  # each listed method does cross the call
        alice.send_in_dialog(method)
        [relayed] = bob.requests(method)
        bob.answer(200, method=method)
        assert alice.finals(method) == [200]
