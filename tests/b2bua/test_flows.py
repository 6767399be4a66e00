"""Calling a registered phone the way it registered (RFC 5626 §5.3, RFC 3261 §18.2.2, RFC 3581).

A phone behind NAT names its private address in its Contact; a TCP softphone accepts no incoming
connection. The gateway reaches both over the flow their REGISTER came in on: the TCP connection
while it is open, the UDP source address when the Contact names another host. The Request-URI
stays the Contact (§10.3, §16.5). Real sans-IO endpoints in memory (see `tests.b2bua.harness`):
a node that does not accept TCP connections refuses any connect that is not its own.
"""

from __future__ import annotations

import re

import pytest

from gateway.b2bua import propagation
from gateway.b2bua.flows import registration_flow
from gateway.config import StaticRoute
from tests.b2bua.harness import GW, SDP_A, SDP_B, USERS, Network, Phone, make_gateway, no_state_left

PHONES = [StaticRoute("phones", re.compile(r"^1\d{3}$"), "registered")]
PUBLIC, PRIVATE = "203.0.113.7", "192.168.1.5"  # the NAT's public address, the phone's own
NAT_PORT = 41234
PASSWORD = USERS["1001"]


@pytest.fixture
def net() -> Network:
    return Network()


def _tcp_softphone(net: Network) -> Phone:
    """1001 behind NAT over TCP: registers from PUBLIC:NAT_PORT, names PRIVATE:5060, accepts nothing."""
    phone = Phone(net, PUBLIC, NAT_PORT, "1001", transport="tcp", contact=f"sip:1001@{PRIVATE}:5060;transport=tcp",
                  accepts=False)
    assert phone.register(PASSWORD).status == 200
    return phone


def _udp_nat_phone(net: Network) -> Phone:
    phone = Phone(net, PUBLIC, NAT_PORT, "1001", contact=f"sip:1001@{PRIVATE}:5060")
    assert phone.register(PASSWORD).status == 200
    return phone


def _full_call(net: Network, caller: Phone, callee: Phone) -> None:
    """Ring, answer, ACK, an INFO each way and the caller's BYE, every request reaching `callee`."""
    callee.answer(180)
    callee.answer(200, SDP_B, method="INVITE")
    assert caller.finals() == [200]
    caller.ack()
    assert len(callee.requests("ACK")) == 1
    caller.send_in_dialog("INFO")
    callee.answer(200, method="INFO")
    assert caller.finals("INFO") == [200]
    callee.send_in_dialog("INFO")
    caller.answer(200, method="INFO")
    assert callee.finals("INFO") == [200]
    caller.send_in_dialog("BYE")
    [bye] = callee.requests("BYE")
    callee.answer(200, method="BYE")
    assert caller.finals("BYE") == [200]
    assert bye.request.uri == callee.contact  # the remote target (its 2xx Contact) is still the Request-URI


# -- TCP: the registration's connection --------------------------------------------------------------
def test_tcp_phone_gets_the_call_on_the_connection_it_registered_over(net: Network) -> None:
    b2bua, recorder = make_gateway(net, PHONES)
    phone = _tcp_softphone(net)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    [invite] = phone.requests("INVITE")
    assert invite.source == ("tcp", *GW)
    assert invite.request.uri == f"sip:1001@{PRIVATE}:5060;transport=tcp"  # §10.3: the Contact, as registered
    assert invite.request.body == SDP_A
    assert "SIP/2.0/TCP" in (invite.request.get("Via") or "")
    _full_call(net, alice, phone)
    assert {event.source for event in phone.requests()} == {("tcp", *GW)}  # every request on the one connection
    assert recorder.kinds() == ["CallOffered", "CallAnswered", "CallEnded"]  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)


def test_closed_registration_connection_falls_back_to_the_contact_and_keeps_the_binding(net: Network) -> None:
    b2bua, _ = make_gateway(net, PHONES)
    phone = _tcp_softphone(net)
    lan_phone = Phone(net, PRIVATE, 5060, "1001")  # what the Contact names, reachable in this test
    net.close_stream(phone.node, net.nodes[GW])
    assert b2bua.registrar.store.contacts("1001", net.now) == [phone.contact]  # until it expires
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    assert phone.requests("INVITE") == []
    [invite] = lan_phone.requests("INVITE")
    assert invite.source == ("tcp", *GW) and invite.request.uri == phone.contact


def test_closed_registration_connection_of_a_phone_that_accepts_nothing_is_503_at_once(net: Network) -> None:
    make_gateway(net, PHONES)
    phone = _tcp_softphone(net)
    net.close_stream(phone.node, net.nodes[GW])
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    assert alice.finals() == [propagation.UNREACHABLE] and phone.requests() == []


def test_reregistering_over_a_new_connection_moves_the_flow(net: Network) -> None:
    make_gateway(net, PHONES)
    old = _tcp_softphone(net)
    net.close_stream(old.node, net.nodes[GW])
    # The phone reconnects (a new NAT port) and registers the same Contact again.
    new = Phone(net, PUBLIC, NAT_PORT + 1, "1001", transport="tcp", contact=old.contact, accepts=False)
    assert new.register(PASSWORD).status == 200
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    assert old.requests("INVITE") == [] and len(new.requests("INVITE")) == 1


def test_in_dialog_requests_fall_back_to_the_contact_when_the_connection_closes_mid_call(net: Network) -> None:
    b2bua, _ = make_gateway(net, PHONES)
    phone = _tcp_softphone(net)
    lan_phone = Phone(net, PRIVATE, 5060, "1001")
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    phone.answer(200, SDP_B)
    alice.ack()
    net.close_stream(phone.node, net.nodes[GW])
    alice.send_in_dialog("BYE")
    assert phone.requests("BYE") == []
    [bye] = lan_phone.requests("BYE")  # §18.1.1: a new connection to the remote target
    assert bye.request.uri == phone.contact


# -- UDP: the REGISTER's source address ---------------------------------------------------------------
def test_udp_phone_behind_nat_is_called_at_the_address_its_register_came_from(net: Network) -> None:
    b2bua, recorder = make_gateway(net, PHONES)
    phone = _udp_nat_phone(net)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    [invite] = phone.requests("INVITE")
    assert invite.request.uri == f"sip:1001@{PRIVATE}:5060"  # the Request-URI stays the Contact URI
    _full_call(net, alice, phone)
    assert recorder.kinds() == ["CallOffered", "CallAnswered", "CallEnded"]  # type: ignore[attr-defined]
    net.advance(40)
    assert no_state_left(b2bua)


def test_nat_contacts_contact_calls_the_contact_as_written(net: Network) -> None:
    make_gateway(net, PHONES, nat_contacts="contact")
    phone = _udp_nat_phone(net)
    lan_phone = Phone(net, PRIVATE, 5060, "1001")
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    assert phone.requests("INVITE") == []
    assert len(lan_phone.requests("INVITE")) == 1


def test_contact_on_the_registering_host_keeps_its_own_port(net: Network) -> None:
    """Not NAT: a phone that sends from one port and listens on another is called where it listens."""
    make_gateway(net, PHONES)
    sender = Phone(net, "10.0.0.5", 40000, "1001", contact="sip:1001@10.0.0.5:5062")
    assert sender.register(PASSWORD).status == 200
    listener = Phone(net, "10.0.0.5", 5062, "1001")
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    assert sender.requests("INVITE") == [] and len(listener.requests("INVITE")) == 1


def test_answer_naming_another_host_moves_the_dialog_off_the_flow(net: Network) -> None:
    """§12.1.2: the 2xx Contact is the remote target; a host other than the phone's is not behind its NAT."""
    make_gateway(net, PHONES)
    phone = _udp_nat_phone(net)
    elsewhere = Phone(net, "198.51.100.9", 5060, "1001")
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    phone.contact = "sip:1001@198.51.100.9:5060"
    phone.answer(200, SDP_B)
    alice.ack()
    alice.send_in_dialog("BYE")
    assert phone.requests("BYE") == [] and len(elsewhere.requests("BYE")) == 1
    assert len(elsewhere.requests("ACK")) == 1


def test_reinvite_from_the_phone_keeping_its_contact_keeps_the_flow(net: Network) -> None:
    make_gateway(net, PHONES)
    phone = _udp_nat_phone(net)
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    alice.call("1001")
    phone.answer(200, SDP_B)
    alice.ack()
    phone.send_in_dialog("INVITE", SDP_B)  # a target refresh naming the same private Contact
    alice.answer(200, SDP_A, method="INVITE")
    assert phone.finals("INVITE") == [200]
    alice.send_in_dialog("BYE")
    assert len(phone.requests("BYE")) == 1


# -- the decision itself -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "contact_hop", "mode", "open_", "expected"),
    [
        (("tcp", PUBLIC, NAT_PORT), ("tcp", PRIVATE, 5060), "source", True, ("tcp", PUBLIC, NAT_PORT)),
        (("tcp", PUBLIC, NAT_PORT), ("tcp", PRIVATE, 5060), "contact", True, ("tcp", PUBLIC, NAT_PORT)),
        (("tcp", PUBLIC, NAT_PORT), ("udp", PRIVATE, 5060), "source", True, ("tcp", PUBLIC, NAT_PORT)),
        (("tcp", PUBLIC, NAT_PORT), ("tcp", PRIVATE, 5060), "source", False, None),
        (("udp", PUBLIC, NAT_PORT), ("udp", PRIVATE, 5060), "source", False, ("udp", PUBLIC, NAT_PORT)),
        (("udp", PUBLIC, NAT_PORT), ("udp", PRIVATE, 5060), "contact", False, None),
        (("udp", PUBLIC, NAT_PORT), ("udp", PUBLIC, 5060), "source", False, None),
        (("udp", PUBLIC, NAT_PORT), ("tcp", PRIVATE, 5060), "source", False, None),
    ],
)
def test_registration_flow_table(source, contact_hop, mode: str, open_: bool, expected) -> None:
    assert registration_flow(source, contact_hop, mode, lambda target: open_ and target == source) == expected


def test_unknown_nat_contacts_mode_is_refused(net: Network) -> None:
    with pytest.raises(ValueError, match="nat_contacts"):
        make_gateway(net, PHONES, nat_contacts="proxy")


def test_tcp_caller_whose_connection_closed_is_reached_at_its_contact(net: Network) -> None:
    """§18.1.1: a request to a peer whose connection is gone opens a new one to its remote target,
    not to the closed connection's ephemeral port."""
    make_gateway(net, [StaticRoute("to-bob", re.compile(r"^2\d{3}$"), "sip:10.0.0.2:5062")])
    alice = Phone(net, "10.0.0.1", 40001, "alice", transport="tcp", contact="sip:alice@10.0.0.1:5071;transport=tcp")
    alice_listening = Phone(net, "10.0.0.1", 5071, "alice")
    bob = Phone(net, "10.0.0.2", 5062, "bob")
    alice.call("2000")
    bob.answer(200, SDP_B)
    alice.ack()
    bob.send_in_dialog("INFO")
    assert len(alice.requests("INFO")) == 1  # over alice's own connection while it is open
    net.close_stream(alice.node, net.nodes[GW])
    bob.send_in_dialog("BYE")
    assert alice.requests("BYE") == []
    [bye] = alice_listening.requests("BYE")
    assert bye.source == ("tcp", *GW)
