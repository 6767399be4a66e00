"""Loss on the wire (issue 14, part 4): calls through a lossy, duplicating, reordering network.

The whole world lives in a network namespace the module creates (tests/helpers/netns.py): the test
thread enters it, so the gateway, the SIPp phones and the SIPp trunk it starts are born there and talk
over that namespace's own 127.0.0.1. Once the phones are registered, every UDP packet to or from the
gateway's SIP port (trunk leg and phone legs, both directions) is lost with 5 % probability,
duplicated with 1 %, and held back 20 ms with 25 % (so the packets sent meanwhile overtake it).

NOT netem: this kernel is built without sch_netem (CONFIG_NET_SCH_NETEM is not set and there are no
modules to load), so the faults are the kernel's netfilter inside the namespace (statistic DROP, TEE,
NFQUEUE to a delaying process) — see tests/helpers/netns.py. `netem_available` is checked and
reported, so a kernel that has netem shows it.

What must hold (SIP's retransmissions, RFC 3261 section 17, and C2): every call completes (answered,
hung up with a 200 to the trunk's BYE), every new caller gets exactly one lead, the call log holds
exactly one entry per call with one activity, however many copies of each request the gateway saw.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.netns import LossyWire, Namespace, WireFaults, netem_available, network_namespace_of
from tests.integration.conftest import GatewayProcess
from tests.integration.live_kit import Admin, LiveWorld, module_gateway, wait_for
from tests.integration.phones import Phones
from tests.integration.sipp_kit import SipMessage
from tests.integration.trunk import Trunk, TrunkCall, TrunkRun

CALLS = 60
CONCURRENT = 4
# R3 skips an employee already on a call, and a call's end can lag behind its BYE by retransmissions:
# twice as many phones as calls at once, so no call finds the whole group busy.
STAFF = 2 * CONCURRENT
FAULTS = WireFaults(loss=0.05, duplicate=0.01, reorder=0.25, delay_ms=20)


@pytest.fixture(scope="module")
def namespace() -> Iterator[Namespace]:
    """A namespace of this module's own, with the test thread inside it until the module is done."""
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    with Namespace("gwloss") as made, made.entered():
        yield made


@pytest.fixture(scope="module")
def gateway(namespace: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    yield from module_gateway(tmp_path_factory, "lossy-network")


@pytest.fixture
def world(gateway: GatewayProcess, phones: Phones, trunk: Trunk) -> LiveWorld:
    return LiveWorld(gateway, Admin(gateway), phones, trunk)


def repeated(messages: list[SipMessage]) -> tuple[int, int]:
    """(sent, received) messages identical to one already sent / received: retransmissions and copies."""
    seen: set[tuple[bool, str]] = set()
    counts = {True: 0, False: 0}
    for message in messages:
        key = (message.sent, message.text)
        counts[message.sent] += key in seen
        seen.add(key)
    return counts[True], counts[False]


def overtaken(run: TrunkRun) -> int:
    """Calls whose INVITE responses reached the trunk out of order (e.g. the 180 before the 100)."""
    return sum(list(call.provisional) != sorted(call.provisional) for call in run.calls)


def test_every_call_completes_and_each_new_caller_gets_one_lead_through_loss_duplication_and_reordering(
    namespace: Namespace, world: LiveWorld, tmp_path: Path,
) -> None:
    assert network_namespace_of(world.gateway.process.pid) == namespace.inode()
    staff = [world.staff(f"Agent {index}", answer_after_ms=100) for index in range(STAFF)]
    number = world.number(world.queue(staff, strategy="evenly", ring_time_s=20), unknown_caller_action="auto_lead")
    callers = [f"06571{index:05d}" for index in range(CALLS)]
    started = time.monotonic()
    with LossyWire(namespace, world.gateway.sip_port, FAULTS, tmp_path) as wire:
        run = world.trunk.call(world.gateway, *(TrunkCall(number.dial, caller) for caller in callers),
                               concurrent=CONCURRENT, talk_ms=500, time_limit_s=75)
        assert run.successes == CALLS and len(run.calls) == CALLS, run.explain()
        entries = [world.logged(call_id, timeout=40) for call_id in run.call_ids]
        # One B leg answered per call: a copy of the trunk's INVITE must not ring a second phone.
        wait_for("every phone's calls ended", lambda: sum(p.calls_ended() for p in world.phones) == CALLS, 10,
                 lambda: "\n".join(p.explain() for p in world.phones))
        faults = wire.counts()
    elapsed = time.monotonic() - started

    trunk_resent, trunk_repeats = repeated(run.messages)
    per_phone = [repeated(phone.messages()) for phone in world.phones]
    phone_resent, phone_repeats = sum(sent for sent, _ in per_phone), sum(got for _, got in per_phone)
    figures = (f"{CALLS} calls ({CONCURRENT} at once) in {elapsed:.1f} s; netem available: "
               f"{netem_available(namespace)}; faults {faults}; trunk resent {trunk_resent} and got "
               f"{trunk_repeats} repeats; phones resent {phone_resent} and got {phone_repeats} repeats; "
               f"{overtaken(run)} calls' provisional responses overtaken")
    print(figures)
    # The faults really struck and SIP really recovered: otherwise this test proves nothing.
    assert faults["dropped"] > 0 and faults["delayed"] > 0, figures
    assert trunk_resent + phone_resent + trunk_repeats + phone_repeats > 0, figures

    # Each caller talked to exactly one phone to the end (the gateway's BYE after the caller's). A phone
    # whose 180 and 200 were both lost may see the INVITE again, which SIPp's phone takes for a new
    # call and drops with its own BYE; the gateway then rings the next member: that leg is not a talk.
    talked = Counter(call.caller_user for phone in world.phones for call in phone.calls()
                     if call.answered and call.hung_up_by == "gateway")
    assert all(talked[caller] == 1 for caller in callers), (talked, [p.counts() for p in world.phones])
    for call, entry in zip(run.calls, entries, strict=True):
        assert call.answered and call.bye_statuses and set(call.bye_statuses) == {200}, (call, figures)
        assert (entry["outcome"], entry["crm"]["action"]) == ("answered", "create_lead"), entry
        assert len(world.items(entry, "created")) == 1, entry["items"]
        assert len(world.activities(entry["interaction_key"])) == 1, entry
    for caller in callers:
        leads = world.items_with_phone("lead", "+33" + caller[1:])
        assert len(leads) == 1, (caller, leads)
    logged = world.admin.get(f"/calls?number={urllib.parse.quote(number.e164)}&limit=200")
    assert logged["total"] == CALLS and sorted(e["call_id"] for e in logged["items"]) == sorted(run.call_ids)
