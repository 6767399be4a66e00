"""SIPp phones and callers for transfers (SPEC R5), on top of the live kit (`live_kit.LiveWorld`).

    alice = world.employee("Alice")
    transferor(world, alice, target=bruno.extension)           # answers, then REFERs (blind)
    colleague(world, bruno)                                     # answers, takes re-INVITEs
    caller = start_caller(world, number, "0655000901", talk_ms=4000)
    caller.wait()

Scenarios are in tests/integration/scenarios/transfer/ (templates, see `sipp_kit.render_scenario`).
The transferor answers the NOTIFYs of its REFER; what they said is read back from its message trace.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.integration.conftest import HOST
from tests.integration.live_kit import LiveNumber, LiveWorld, Staff, sip_secret
from tests.integration.phones import Phone
from tests.integration.sipp_kit import SipMessage, SippProcess, render_scenario, wait_until

SCENARIOS = Path(__file__).resolve().parent / "scenarios" / "transfer"
KIT_TEMPLATE_DIR = Path(__file__).resolve().parent / "scenarios" / "kit"
_RUNS = itertools.count(1)


def _render(name: str, destination: Path, values: dict[str, str | int | bool]) -> Path:
    # `render_scenario` reads kit templates; ours are rendered by name relative to it.
    return render_scenario(f"../transfer/{name}", destination, values)


def _phone(world: LiveWorld, staff: Staff, scenario: str, values: dict[str, str | int | bool],
           lifetime_s: float = 90.0) -> Phone:
    place = world.phones.directory / "phones"
    place.mkdir(parents=True, exist_ok=True)
    name = f"{scenario}-{staff.extension}-{next(_RUNS)}"
    calls = _render(f"{scenario}.xml", place / f"{name}-calls.xml", values)
    register = render_scenario("phone_register.xml", place / f"{name}-register.xml", {
        "EXPIRES": 3600, "LIFETIME_MS": round(lifetime_s * 1000)})
    # -aa: SIPp answers 200 itself to a NOTIFY the scenario does not wait for (one crossing a BYE).
    arguments = ["-t", "u1", "-aa", "-sf", str(register), "-oocsf", str(calls), "-s", staff.extension,
                 "-au", staff.extension, "-ap", sip_secret(staff.extension), "-m", "1",
                 f"{HOST}:{world.gateway.sip_port}"]
    process = SippProcess(place, name, arguments, lifetime_s=lifetime_s + 5)
    phone = Phone(staff.extension, "answer", "udp", process)
    world.phones.started.append(phone)
    staff.phone = phone
    wait_until(lambda: phone.registered() or not process.running(), 5, f"phone {staff.extension} registered",
               phone.explain)
    assert phone.registered(), phone.explain()
    return phone


def transferor(world: LiveWorld, staff: Staff, target: str, *, attended: bool = False, hang_up: bool = False,
               refer_after_ms: int = 500, consult_ms: int = 300) -> Phone:
    """`staff`'s phone: answers, then transfers the call to extension `target` (see transferor.xml)."""
    refer_to = f"<sip:{target}@[remote_ip]:[remote_port]>"
    if attended:
        # Replaces names the consultation dialog: its Call-ID ("consult///" + this call's, escaped), the
        # gateway's tag as to-tag and the phone's own as from-tag (RFC 3891 §3, as the transferor sees it).
        replaces = ("consult%2F%2F%2F[$cid_local]%40[$cid_host]%3Bto-tag%3D[$consult_tag]"
                    "%3Bfrom-tag%3Dconsult[pid]-[call_number]")
        refer_to = f"<sip:{target}@[remote_ip]:[remote_port]?Replaces={replaces}>"
    return _phone(world, staff, "transferor", {
        "TARGET": target, "REFER_TO": refer_to, "REFER_AFTER_MS": refer_after_ms, "CONSULT_MS": consult_ms,
        "ATTENDED": attended, "HANG_UP": hang_up, "TWO_BYES": attended and not hang_up,
    })


def colleague(world: LiveWorld, staff: Staff, answer_after_ms: int = 200) -> Phone:
    """`staff`'s phone: answers after `answer_after_ms`, takes re-INVITEs, waits for the BYE."""
    return _phone(world, staff, "target", {"ANSWER_AFTER_MS": max(1, answer_after_ms)})


class Caller:
    """One call from the trunk side that accepts re-INVITEs (a transferred caller)."""

    def __init__(self, world: LiveWorld, number: LiveNumber, caller: str, talk_ms: int, lifetime_s: float,
                 refer_to: str | None = None) -> None:
        place = world.phones.directory / "callers"
        place.mkdir(parents=True, exist_ok=True)
        name = f"caller-{caller}-{next(_RUNS)}"
        scenario = _render("caller.xml", place / f"{name}.xml", {
            "DIALLED": number.dial, "CALLER": caller, "TALK_MS": talk_ms, "REFER": refer_to or ""})
        self.process = SippProcess(place, name, ["-t", "u1", "-sf", str(scenario), "-m", "1",
                                                 f"{HOST}:{world.gateway.sip_port}"], lifetime_s=lifetime_s)

    def messages(self) -> list[SipMessage]:
        return self.process.messages()

    @property
    def call_id(self) -> str:
        sent = [m for m in self.messages() if m.sent and m.method == "INVITE"]
        assert sent, self.explain()
        return sent[0].call_id

    def reinvites(self) -> list[SipMessage]:
        """The re-INVITEs the gateway sent this caller (each transfer moves it onto another leg)."""
        return [m for m in self.messages() if not m.sent and m.method == "INVITE"]

    def wait(self, timeout: float = 60.0) -> int:
        """SIPp's exit code (0: the scenario ran to its end); stopped past `timeout`."""
        return self.process.wait(timeout)

    def stop(self) -> None:
        self.process.stop()

    def explain(self) -> str:
        lines = [f"{'>' if m.sent else '<'} {m.first_line} [{m.call_id}]" for m in self.messages()]
        return "caller:\n" + "\n".join(lines[-40:]) + "\n" + self.process.errors()


def start_caller(world: LiveWorld, number: LiveNumber, caller: str, *, talk_ms: int = 6000,
                 lifetime_s: float = 60.0, refer_to: str | None = None) -> Caller:
    """A caller from the trunk, stopped with the test's phones; with `refer_to` it first tries to
    transfer the call itself (and expects the gateway's 403)."""
    started = Caller(world, number, caller, talk_ms, lifetime_s, refer_to)
    world.phones.started.append(started)  # type: ignore[arg-type]  # anything with stop()
    return started


def notify_progress(phone: Phone) -> list[tuple[str, str]]:
    """What the NOTIFYs the phone received said: (sipfrag status line, Subscription-State value)."""
    found = []
    for message in phone.messages():
        if message.sent or message.method != "NOTIFY":
            continue
        body = message.text.split("\r\n\r\n", 1)[-1] if "\r\n\r\n" in message.text else message.text.split("\n\n", 1)[-1]
        state = (message.header("Subscription-State") or "").split(";")[0]
        found.append((body.strip().splitlines()[0] if body.strip() else "", state))
    return found


def sent_statuses(phone: Phone, method: str) -> list[int]:
    """The statuses the gateway answered the phone's `method` requests with."""
    return [m.status for m in phone.messages() if not m.sent and m.cseq_method == method and m.status]


def stray_refer(world: LiveWorld, call_id: str, refer_to: str) -> SippProcess:
    """REFERs from a phone in no call (see stray_refer.xml); the process exits 0 when both got 481."""
    place = world.phones.directory / "callers"
    place.mkdir(parents=True, exist_ok=True)
    name = f"stray-refer-{next(_RUNS)}"
    if "%" in call_id:
        raise ValueError(f"-cid_str would read {call_id!r} as a format")
    scenario = _render("stray_refer.xml", place / f"{name}.xml", {"REFER": refer_to})
    return SippProcess(place, name, ["-t", "u1", "-sf", str(scenario), "-cid_str", call_id, "-m", "1",
                                     f"{HOST}:{world.gateway.sip_port}"], lifetime_s=15)
