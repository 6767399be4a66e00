"""The trunk side as a real SIPp process: calls to the gateway's numbers, one CSV row per call.

    run = call_from_trunk(gateway, TrunkCall(dialled="1001", caller="0612345678"), talk_ms=300)
    assert run.successes == 1, run.explain()
    run.call_ids  # the A-leg Call-IDs, to look the calls up in the call log

Each call's Request-URI user is the dialled number and its From user the caller (None: anonymous,
RFC 3323); P-Asserted-Identity and Privacy are optional per call. One run is one SIPp process that
places its calls one after another (or `concurrent` at once) with the same behaviour: talk and hang
up, cancel while ringing, expect a failure status, send the INVITE twice, send the BYE twice.
Results are read from SIPp's message trace, per Call-ID.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.integration.conftest import HOST
from tests.integration.sipp_kit import (
    SipMessage,
    SipPeer,
    SippProcess,
    by_call_id,
    recv_timeout,
    render_scenario,
    transport_flags,
)

PROVISIONAL = (100, 180, 181, 182, 183)
FAILURES = (400, 403, 404, 408, 410, 480, 481, 484, 486, 487, 488, 500, 502, 503, 504, 600, 603)
_RUNS = itertools.count(1)
ANONYMOUS = "anonymous@anonymous.invalid"


@dataclass(frozen=True)
class TrunkCall:
    """Who calls which number, as the trunk presents it.

    caller: the From user (a number as the trunk sends it, e.g. "0612345678" or "+33612345678");
    None sends From: "Anonymous" <sip:anonymous@anonymous.invalid>. asserted: P-Asserted-Identity,
    a number (sent as <sip:number@host>) or a whole URI ("tel:+33..."). privacy: the Privacy header
    value ("id", "none"). None of them may contain ";" (the CSV's separator).
    """

    dialled: str
    caller: str | None = "0600000001"
    display: str = ""
    asserted: str | None = None
    privacy: str | None = None

    def csv_row(self, row: int) -> str:
        from_uri = ANONYMOUS if self.caller is None else f"{self.caller}@{HOST}"
        display = '"Anonymous"' if self.caller is None and not self.display else (
            f'"{self.display}"' if self.display else "")
        asserted = ""
        if self.asserted is not None:
            uri = self.asserted if ":" in self.asserted else f"sip:{self.asserted}@{HOST}"
            asserted = f"P-Asserted-Identity: <{uri}>"
        privacy = f"Privacy: {self.privacy}" if self.privacy is not None else ""
        fields = [str(row), from_uri, self.dialled, display, asserted, privacy]
        if any(";" in value for value in fields):
            raise ValueError(f"a trunk call's values cannot contain ';' (the CSV separator): {self}")
        return ";".join(fields)


@dataclass(frozen=True)
class TrunkCallResult:
    """One call as the trunk saw it."""

    call: TrunkCall
    call_id: str
    final_status: int | None  # the INVITE's final response; None if none came
    cancelled: bool  # the trunk sent CANCEL
    hung_up_by: Literal["caller", "callee"] | None  # who sent the BYE
    invites_sent: int  # 2 when sent twice on purpose; SIPp's own UDP retransmissions count too
    bye_statuses: tuple[int, ...]  # the responses to the trunk's BYE(s), e.g. (200, 200) for a duplicate
    ok: bool  # the final status was the expected one and an answered call was hung up cleanly
    provisional: tuple[int, ...] = field(default=())  # 100/180/183 received, in order

    @property
    def answered(self) -> bool:
        return self.final_status == 200


@dataclass(frozen=True)
class TrunkRun:
    """All the calls of one run, in the order they were placed."""

    calls: list[TrunkCallResult]
    expected_status: int
    returncode: int  # SIPp's: 0 all scenarios completed, 1 some failed, other values fatal
    sipp_errors: str
    messages: list[SipMessage]

    @property
    def call_ids(self) -> list[str]:
        return [result.call_id for result in self.calls]

    @property
    def statuses(self) -> list[int | None]:
        return [result.final_status for result in self.calls]

    @property
    def successes(self) -> int:
        return sum(result.ok for result in self.calls)

    @property
    def failures(self) -> int:
        return len(self.calls) - self.successes

    def explain(self) -> str:
        """The failed calls' own messages first (a long run's tail rarely holds them), then the tail."""
        def line(m: SipMessage) -> str:
            return f"{'>' if m.sent else '<'} {m.first_line} [{m.call_id}]"
        failed = {result.call_id: result for result in self.calls if not result.ok}
        parts = [f"trunk run (expected {self.expected_status}, SIPp exit {self.returncode}), "
                 f"{len(failed)} of {len(self.calls)} calls failed:"]
        for call_id, messages in by_call_id(self.messages).items():
            if call_id in failed:
                parts.append(f"failed: {failed[call_id]}")
                parts.extend(f"  {line(m)}" for m in messages)
        parts.append("the run's last messages:")
        parts.extend(line(m) for m in self.messages[-60:])
        return "\n".join(parts) + "\n" + self.sipp_errors[-4000:]


class TrunkCalls:
    """A run in progress (see `start_trunk_calls`); `wait()` gives its results."""

    def __init__(self, calls: Sequence[TrunkCall], expect: int, duplicate_bye: bool, process: SippProcess,
                 time_limit_s: float) -> None:
        self.planned = list(calls)
        self.expect = expect
        self.duplicate_bye = duplicate_bye
        self.process = process
        self.time_limit_s = time_limit_s

    def wait(self) -> TrunkRun:
        """Block until every call has ended (SIPp exits), at most the run's time limit."""
        returncode = self.process.wait(self.time_limit_s + 5)
        return self.result(returncode)

    def result(self, returncode: int = -1) -> TrunkRun:
        """The calls as far as they went: a running run's results so far."""
        messages = self.process.messages()
        results = [self._result(call_id, group) for call_id, group in by_call_id(messages).items()]
        return TrunkRun([r for r in results if r is not None], self.expect, returncode,
                        self.process.errors(), messages)

    def stop(self) -> None:
        self.process.stop()

    def _result(self, call_id: str, messages: list[SipMessage]) -> TrunkCallResult | None:
        invites = [m for m in messages if m.sent and m.method == "INVITE"]
        if not invites:
            return None
        row = int(invites[0].header("X-Kit-Row") or 0)
        responses = [m for m in messages if not m.sent and m.status is not None]
        finals = [m.status for m in responses if m.cseq_method == "INVITE" and (m.status or 0) >= 200]
        final = finals[0] if finals else None
        bye = next((m for m in messages if m.method == "BYE"), None)
        bye_statuses = tuple(m.status for m in responses if m.cseq_method == "BYE" and m.status)
        hung_up_by: Literal["caller", "callee"] | None = None if bye is None else ("caller" if bye.sent else "callee")
        cleanly_ended = final != 200 or (hung_up_by == "caller" and 200 in bye_statuses) or (
            hung_up_by == "callee" and any(m.sent and m.status == 200 and m.cseq_method == "BYE" for m in messages))
        return TrunkCallResult(
            call=self.planned[row],
            call_id=call_id,
            final_status=final,
            cancelled=any(m.sent and m.method == "CANCEL" for m in messages),
            hung_up_by=hung_up_by,
            invites_sent=len(invites),
            bye_statuses=bye_statuses,
            ok=final == self.expect and cleanly_ended and (not self.duplicate_bye or len(bye_statuses) >= 2),
            provisional=tuple(m.status for m in responses if m.cseq_method == "INVITE" and m.status in PROVISIONAL),
        )


def start_trunk_calls(
    gateway: SipPeer,
    *calls: TrunkCall,
    expect: int = 200,
    talk_ms: int = 300,
    cancel_after_ms: int | None = None,
    retransmit_invite_after_ms: int | None = None,
    duplicate_bye: bool = False,
    transport: str = "udp",
    concurrent: int = 1,
    time_limit_s: float = 30.0,
    directory: Path | None = None,
) -> TrunkCalls:
    """Start placing `calls` from the trunk; returns at once (the options: see `call_from_trunk`)."""
    if not calls:
        raise ValueError("give at least one TrunkCall")
    if cancel_after_ms is not None and expect == 200:
        expect = 487
    place = (directory or gateway.log_path.parent) / "trunk"
    place.mkdir(parents=True, exist_ok=True)
    name = f"trunk-{next(_RUNS)}"
    csv = place / f"{name}.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(call.csv_row(row) + "\n" for row, call in enumerate(calls)))
    scenario = render_scenario("trunk_call.xml", place / f"{name}.xml", {
        "RETRANSMIT": retransmit_invite_after_ms is not None,
        "RESPONSES_BEFORE_RETRANSMIT": '  <recv response="100" response_txn="invite"/>\n' + _responses(
            recv_timeout(retransmit_invite_after_ms), "retransmit"),
        "RESPONSES": _responses(recv_timeout(cancel_after_ms), "cancel"),
        "RESPONSES_AFTER_CANCEL": _responses(5000, "end", after_cancel=True),
        "TALK_MS": recv_timeout(talk_ms) or 1,
        "DUPLICATE_BYE": duplicate_bye,
    })
    arguments = [
        *transport_flags(transport), "-sf", str(scenario), "-inf", str(csv), "-m", str(len(calls)),
        "-l", str(concurrent), "-r", "100", "-cid_str", f"kit{name[6:]}-%u-%p@{HOST}", "-timeout_error",
        f"{HOST}:{gateway.sip_port}",
    ]
    if duplicate_bye or retransmit_invite_after_ms is not None:
        # SIPp takes a response identical to one it already had for a retransmission and resends
        # what it sent after that one: the deliberate duplicate, answered again, forever. -nr turns
        # that (and its own UDP retransmissions) off.
        arguments.append("-nr")
    process = SippProcess(place, name, arguments, lifetime_s=time_limit_s)
    return TrunkCalls(calls, expect, duplicate_bye, process, time_limit_s)


def call_from_trunk(
    gateway: SipPeer,
    *calls: TrunkCall,
    expect: int = 200,
    talk_ms: int = 300,
    cancel_after_ms: int | None = None,
    retransmit_invite_after_ms: int | None = None,
    duplicate_bye: bool = False,
    transport: str = "udp",
    concurrent: int = 1,
    time_limit_s: float = 30.0,
    directory: Path | None = None,
) -> TrunkRun:
    """Place `calls` from the trunk and wait for all of them to end (at most `time_limit_s`).

    expect: the final status each call should get (200 answered, or 404/480/486/503...; 487 by
    default with cancel_after_ms). talk_ms: after the answer, the trunk hangs up after this long
    unless the callee's BYE came first. cancel_after_ms: CANCEL once no response has come for this
    long (100 Trying comes at once, so it counts from the last provisional, e.g. from the 180).
    retransmit_invite_after_ms: after the 100 Trying and once no response has come for this long,
    send the same INVITE (same branch) again; give the callee an answer delay longer than that.
    duplicate_bye: send the same BYE (same branch, same CSeq) again after its 200.
    concurrent: how many calls are up at once (1: strictly one after another).
    """
    return start_trunk_calls(
        gateway, *calls, expect=expect, talk_ms=talk_ms, cancel_after_ms=cancel_after_ms,
        retransmit_invite_after_ms=retransmit_invite_after_ms, duplicate_bye=duplicate_bye,
        transport=transport, concurrent=concurrent, time_limit_s=time_limit_s, directory=directory,
    ).wait()


class Trunk:
    """Places calls for one test and stops any run still going at its end (the `trunk` fixture)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[TrunkCalls] = []

    def call(self, gateway: SipPeer, *calls: TrunkCall, **options: Any) -> TrunkRun:
        """`call_from_trunk` with this test's directory."""
        return self.start(gateway, *calls, **options).wait()

    def start(self, gateway: SipPeer, *calls: TrunkCall, **options: Any) -> TrunkCalls:
        """`start_trunk_calls` with this test's directory."""
        run = start_trunk_calls(gateway, *calls, directory=self.directory, **options)
        self.started.append(run)
        return run

    def stop_all(self) -> None:
        for run in self.started:
            run.stop()


def _responses(timeout_ms: int | None, on_timeout: str, *, after_cancel: bool = False) -> str:
    """The recv elements of a wait for the INVITE's outcome: provisional responses stay, finals branch."""
    timeout = f' timeout="{timeout_ms}" ontimeout="{on_timeout}"' if timeout_ms is not None else ""
    codes: list[tuple[int, str | None]] = [(code, None) for code in PROVISIONAL]
    if not after_cancel:
        codes.append((200, "answered"))
    codes += [(code, "rejected") for code in FAILURES]
    lines = []
    for index, (code, goes_to) in enumerate(codes):
        last = index == len(codes) - 1
        optional = "" if last else ' optional="true"'
        jump = f' next="{goes_to}"' if goes_to else ""
        lines.append(f'  <recv response="{code}" response_txn="invite"{optional}{jump}{timeout}/>')
    return "\n".join(lines)
