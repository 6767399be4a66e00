"""Employees' phones as real SIPp processes: REGISTER with digest, then answer, ring, or be busy.

    phone = start_phone(gateway, "1001", USER_1001_PASSWORD, mode="answer")
    ... a call from the trunk (tests/integration/trunk.py) ...
    phone.wait_calls(answered=1)
    phone.stop()

One SIPp per phone: its main scenario registers the extension (Contact = its own SIPp port, UDP or
TCP) and idles; every INVITE the gateway sends it is an out-of-call message handled by the mode's
scenario, so one phone takes any number of calls, in sequence or at once. What it did is read back
from its message trace (`calls()`), keyed by the Call-ID of the gateway's B leg.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.integration.conftest import HOST
from tests.integration.sipp_kit import (
    KIT_SCENARIOS,
    SipMessage,
    SipPeer,
    SippProcess,
    by_call_id,
    recv_timeout,
    render_scenario,
    transport_flags,
    wait_until,
)

PhoneMode = Literal["answer", "ring", "busy", "unregistered"]
MODES: tuple[PhoneMode, ...] = ("answer", "ring", "busy", "unregistered")
_PHONES = itertools.count(1)


@dataclass(frozen=True)
class PhoneCall:
    """One call offered to a phone (one Call-ID of the gateway's leg to it)."""

    call_id: str
    invite: SipMessage  # the first INVITE, for its From / To / P-Asserted-Identity as the phone saw them
    final_status: int | None  # what the phone answered: 200, 486, 487; None while it rings
    cancelled: bool  # the gateway sent CANCEL
    hung_up_by: Literal["phone", "gateway"] | None  # who sent the BYE; None if no BYE (yet)
    ended: bool  # the call is over on the phone's side (final non-2xx ACKed, or BYE answered)

    @property
    def answered(self) -> bool:
        return self.final_status == 200

    @property
    def caller_user(self) -> str | None:
        """The user part of the From the phone saw (what its display would show)."""
        return _uri_user(self.invite.header("From") or "")


def _uri_user(header: str) -> str | None:
    start = header.find("sip:")
    if start < 0:
        return None
    user = header[start + 4:].split("@", 1)
    return user[0] if len(user) == 2 else None


def _phone_call(call_id: str, messages: list[SipMessage]) -> PhoneCall | None:
    invites = [m for m in messages if not m.sent and m.method == "INVITE"]
    if not invites:
        return None
    finals = [m.status for m in messages if m.sent and m.cseq_method == "INVITE" and (m.status or 0) >= 200]
    bye = next((m for m in messages if m.method == "BYE"), None)
    bye_answered = any(m.status == 200 and m.cseq_method == "BYE" for m in messages)
    acked = any(not m.sent and m.method == "ACK" for m in messages)
    final = finals[0] if finals else None
    return PhoneCall(
        call_id=call_id,
        invite=invites[0],
        final_status=final,
        cancelled=any(not m.sent and m.method == "CANCEL" for m in messages),
        hung_up_by=None if bye is None else ("phone" if bye.sent else "gateway"),
        ended=bye_answered or (final is not None and final != 200 and acked),
    )


class Phone:
    """A running phone. Counts come from its message trace, so they are what went over the wire."""

    def __init__(self, extension: str, mode: PhoneMode, transport: str, process: SippProcess) -> None:
        self.extension = extension
        self.mode = mode
        self.transport = transport
        self.process = process

    @property
    def port(self) -> int:
        """The SIPp port: where it registered from and what its Contact names."""
        return self.process.port

    def messages(self) -> list[SipMessage]:
        return self.process.messages()

    def registered(self) -> bool:
        """The gateway answered its authenticated REGISTER with 200."""
        return any(not m.sent and m.status == 200 and m.cseq_method == "REGISTER" for m in self.messages())

    def registration_status(self) -> int | None:
        """The last final status the gateway gave its REGISTERs (401 after a wrong password)."""
        finals = [m.status for m in self.messages()
                  if not m.sent and m.cseq_method == "REGISTER" and (m.status or 0) >= 200]
        return finals[-1] if finals else None

    def calls(self) -> list[PhoneCall]:
        """The calls offered to it, in arrival order."""
        found = (_phone_call(call_id, group) for call_id, group in by_call_id(self.messages()).items())
        return [call for call in found if call is not None]

    def call_ids(self) -> list[str]:
        return [call.call_id for call in self.calls()]

    def calls_offered(self) -> int:
        return len(self.calls())

    def calls_answered(self) -> int:
        return sum(call.answered for call in self.calls())

    def calls_rejected_busy(self) -> int:
        return sum(call.final_status == 486 for call in self.calls())

    def calls_cancelled(self) -> int:
        """Calls the gateway cancelled while the phone rang (the phone answered 487)."""
        return sum(call.final_status == 487 for call in self.calls())

    def calls_ended(self) -> int:
        return sum(call.ended for call in self.calls())

    def wait_calls(self, *, offered: int = 0, answered: int = 0, cancelled: int = 0, busy: int = 0,
                   ended: int = 0, timeout: float = 10.0) -> None:
        """Block until at least these counts are reached; AssertionError (with the trace) past `timeout`."""
        wanted = {"offered": offered, "answered": answered, "cancelled": cancelled, "busy": busy, "ended": ended}

        def reached() -> bool:
            counts = self.counts()
            return all(counts[name] >= least for name, least in wanted.items())

        wait_until(reached, timeout, f"phone {self.extension}: {wanted}", self.explain)

    def counts(self) -> dict[str, int]:
        calls = self.calls()
        return {
            "offered": len(calls),
            "answered": sum(call.answered for call in calls),
            "cancelled": sum(call.final_status == 487 for call in calls),
            "busy": sum(call.final_status == 486 for call in calls),
            "ended": sum(call.ended for call in calls),
        }

    def explain(self) -> str:
        """What the phone saw and SIPp's errors: the message for a failed assertion."""
        lines = [f"{'>' if m.sent else '<'} {m.first_line} [{m.call_id}]" for m in self.messages()]
        return f"phone {self.extension} ({self.mode}, {self.transport}):\n" + "\n".join(lines[-40:]) \
            + "\n" + self.process.errors()

    def stop(self) -> None:
        """Stop its SIPp (by PID). Its registration stays in the gateway until it expires."""
        self.process.stop()

    def __enter__(self) -> Phone:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_phone(
    gateway: SipPeer,
    extension: str,
    password: str,
    mode: PhoneMode = "answer",
    transport: str = "udp",
    *,
    answer_after_ms: int = 0,
    talk_ms: int | None = None,
    expires_s: int = 3600,
    lifetime_s: float = 120.0,
    registered_within_s: float = 10.0,
    directory: Path | None = None,
) -> Phone:
    """A phone for `extension`, registered with digest (unless mode="unregistered") before returning.

    mode: "answer" rings, answers after `answer_after_ms` (a CANCEL before then gets 487), then
    waits for the caller's BYE, or hangs up itself after `talk_ms` if given and nobody hung up first;
    "ring" rings until CANCEL (487); "busy" answers 486; "unregistered" listens but never REGISTERs.
    The SIPp process ends after `lifetime_s` whatever happens. Raises AssertionError when the
    registration does not succeed within `registered_within_s` (the phone is stopped first).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    place = (directory or gateway.log_path.parent) / "phones"
    name = f"phone-{extension}-{mode}-{transport}-{next(_PHONES)}"
    place.mkdir(parents=True, exist_ok=True)
    calls_scenario = _calls_scenario(place, name, mode, answer_after_ms, talk_ms)
    if mode == "unregistered":
        arguments = ["-sf", str(calls_scenario), "-s", extension, "-m", "1000000"]
    else:
        register = render_scenario("phone_register.xml", place / f"{name}-register.xml", {
            "EXPIRES": expires_s, "LIFETIME_MS": round(lifetime_s * 1000)})
        arguments = ["-sf", str(register), "-oocsf", str(calls_scenario), "-s", extension,
                     "-au", extension, "-ap", password, "-m", "1", f"{HOST}:{gateway.sip_port}"]
    # A registered phone's own scenario ends its life; SIPp's -timeout is only the safety net behind it.
    sipp_lifetime = lifetime_s if mode == "unregistered" else lifetime_s + 5
    process = SippProcess(place, name, [*transport_flags(transport), *arguments], lifetime_s=sipp_lifetime)
    phone = Phone(extension, mode, transport, process)
    if mode != "unregistered":
        try:
            wait_until(lambda: phone.registered() or not process.running(), registered_within_s,
                       f"phone {extension} registered", phone.explain)
            if not phone.registered():
                raise AssertionError(f"phone {extension} did not register (last REGISTER answer: "
                                     f"{phone.registration_status()})\n{phone.explain()}")
        except BaseException:
            phone.stop()
            raise
    return phone


def _calls_scenario(place: Path, name: str, mode: PhoneMode, answer_after_ms: int, talk_ms: int | None) -> Path:
    destination = place / f"{name}-calls.xml"
    if mode in ("answer", "unregistered"):
        return render_scenario("phone_answer.xml", destination, {
            "ANSWER_AFTER_MS": recv_timeout(answer_after_ms) or 1,
            "CALLER_HANGS_UP": talk_ms is None,
            "PHONE_HANGS_UP": talk_ms is not None,
            "TALK_MS": recv_timeout(talk_ms) or 1,
        })
    return render_scenario(f"phone_{mode}.xml", destination, {})


def sip_users_config(passwords: Mapping[str, str]) -> str:
    """`[[sip.users]]` tables for `start_gateway(extra_sip=...)`: one digest user per extension."""
    return "".join(f'[[sip.users]]\nusername = "{user}"\npassword = "{secret}"\n' for user, secret in passwords.items())


class Phones:
    """Starts phones for one test and stops every one of them at its end (the `phones` fixture)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Phone] = []

    def start(self, gateway: SipPeer, extension: str, password: str, mode: PhoneMode = "answer",
              transport: str = "udp", *, answer_after_ms: int = 0, talk_ms: int | None = None,
              lifetime_s: float = 120.0) -> Phone:
        """`start_phone` with this test's directory; the phone is stopped with the others."""
        phone = start_phone(gateway, extension, password, mode, transport, answer_after_ms=answer_after_ms,
                            talk_ms=talk_ms, lifetime_s=lifetime_s, directory=self.directory)
        self.started.append(phone)
        return phone

    def stop_all(self) -> None:
        for phone in self.started:
            phone.stop()

    def __iter__(self) -> Iterator[Phone]:
        return iter(self.started)


__all__ = ["KIT_SCENARIOS", "MODES", "Phone", "PhoneCall", "PhoneMode", "Phones", "sip_users_config", "start_phone"]
