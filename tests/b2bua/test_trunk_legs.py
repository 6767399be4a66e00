"""SPEC R4 on leg B: a trunk's 401/407 is answered once with its credentials, and our caller ID
(From, P-Asserted-Identity) replaces the caller's. Real sans-IO endpoints in memory."""

from __future__ import annotations

from gateway.b2bua.ports import TrunkSide
from gateway.routing.decision import RouteDecision
from gateway.routing.targets import RingStep, Target
from gateway.sip.auth import DigestChallenger
from tests.b2bua.harness import SDP_B, Network, Phone, make_gateway
from tests.b2bua.test_hunt import ScriptedRouter

PROVIDER = ("10.0.0.9", 5070)
SECRET = "provider-secret"  # noqa: S105


class OneTrunk(TrunkSide):
    def credentials(self, trunk_id: int) -> tuple[str, str] | None:
        return ("gw-account", SECRET) if trunk_id == 4 else None


def outside(trunk_id: int = 4) -> RouteDecision:
    target = Target.outside("+33612345678", f"sip:+33612345678@{PROVIDER[0]}:{PROVIDER[1]}",
                            trunk_id=trunk_id, caller_id="+33142685300")
    return RouteDecision((RingStep((target,), None, ("R4",)),), None, ("R4",))


def setup(trunk_id: int = 4) -> tuple[Network, Phone, Phone]:
    net = Network()
    router = ScriptedRouter()
    router.decision = outside(trunk_id)
    make_gateway(net, [], router=router, trunks=OneTrunk())
    alice = Phone(net, "10.0.0.1", 5061, "alice")
    provider = Phone(net, *PROVIDER, "provider")
    return net, alice, provider


def test_r4_a_trunks_challenge_is_answered_once_with_its_credentials() -> None:
    net, alice, provider = setup()
    alice.call("0612345678")
    challenger = DigestChallenger(b"k", "provider.example")
    provider.answer(407, extra=[("Proxy-Authenticate", challenger.challenge(net.now))])
    first, second = (event.request for event in provider.requests("INVITE"))
    assert second.cseq[0] == first.cseq[0] + 1 and second.call_id == first.call_id
    assert second.from_tag == first.from_tag
    verdict = challenger.verify(second.get("Proxy-Authorization") or "", "INVITE", net.now,
                                {"gw-account": SECRET}.get, request_uri=second.uri)
    assert verdict.ok and verdict.username == "gw-account"
    provider.answer(200, SDP_B)
    assert alice.finals() == [200]


def test_r4_a_second_challenge_is_the_callers_failure() -> None:
    net, alice, provider = setup()
    alice.call("0612345678")
    challenger = DigestChallenger(b"k", "provider.example")
    provider.answer(407, extra=[("Proxy-Authenticate", challenger.challenge(net.now))])
    provider.answer(407, extra=[("Proxy-Authenticate", challenger.challenge(net.now))])
    assert len(provider.requests("INVITE")) == 2
    assert alice.finals() and alice.finals()[0] >= 400


def test_r4_without_credentials_the_challenge_is_not_answered() -> None:
    net, alice, provider = setup(trunk_id=5)
    alice.call("0612345678")
    provider.answer(401, extra=[("WWW-Authenticate", DigestChallenger(b"k", "p").challenge(net.now))])
    assert len(provider.requests("INVITE")) == 1
    assert alice.finals() and alice.finals()[0] >= 400


def test_r4_the_trunk_sees_our_caller_id_not_the_callers() -> None:
    net, alice, provider = setup()
    alice.call("0612345678")
    invite = provider.requests("INVITE")[0].request
    assert (invite.get("From") or "").startswith("<sip:+33142685300@10.0.0.9>")
    assert invite.get("P-Asserted-Identity") == "<sip:+33142685300@10.0.0.9>"
    assert "alice" not in (invite.get("From") or "")
    provider.answer(486)
    assert alice.finals() == [486]
