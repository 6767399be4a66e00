"""What the phone and trunk kits share: scenario templates, bounded SIPp processes, message traces.

The kit's scenarios live in tests/integration/scenarios/kit/ as templates: SIPp reads a recv timeout
only as a number written in the file, so the per-run times (answer after, talk, cancel after) are
written into a copy of the template before SIPp starts. `@NAME@` is a value; a block between
`<!--@IF NAME-->` and `<!--@END NAME-->` is kept only when NAME is on.

What happened on the wire is read back from SIPp's `-trace_msg` file, one `SipMessage` per message,
so results name the Call-IDs and statuses seen rather than SIPp's aggregate counters.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.integration.conftest import HOST, free_media_port, free_port

KIT_SCENARIOS = Path(__file__).resolve().parent / "scenarios" / "kit"
_BLOCK = re.compile(r"<!--@IF (\w+)-->(.*?)<!--@END \1-->", re.DOTALL)
_VALUE = re.compile(r"@([A-Z_]+)@")
TRANSPORT_FLAGS = {"udp": ["-t", "u1"], "tcp": ["-t", "t1"]}


def render_scenario(template: str, destination: Path, values: Mapping[str, str | int | bool]) -> Path:
    """Write `template` with its blocks chosen and its values filled to `destination`."""
    text = (KIT_SCENARIOS / template).read_text()
    text = _BLOCK.sub(lambda found: found.group(2) if values.get(found.group(1)) else "", text)

    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in values:
            raise KeyError(f"{template} needs a value for @{name}@")
        return str(values[name])

    destination.write_text(_VALUE.sub(value, text))
    return destination


def recv_timeout(milliseconds: int | None) -> int | None:
    """A SIPp recv timeout: 0 there means "wait forever", so an immediate deadline is 1 ms."""
    return None if milliseconds is None else max(1, milliseconds)


def transport_flags(transport: str) -> list[str]:
    if transport not in TRANSPORT_FLAGS:
        raise ValueError(f"transport must be one of {sorted(TRANSPORT_FLAGS)}, not {transport!r}")
    return TRANSPORT_FLAGS[transport]


@dataclass(frozen=True)
class SipMessage:
    """One message SIPp sent or received, as its message trace shows it."""

    sent: bool
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\r\n", 1)[0].split("\n", 1)[0]

    @property
    def status(self) -> int | None:
        found = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(found.group(1)) if found else None

    @property
    def method(self) -> str | None:
        """The request's method; None for a response."""
        return None if self.status is not None else self.first_line.split(" ", 1)[0]

    def header(self, name: str) -> str | None:
        found = re.search(rf"^{re.escape(name)}:[ \t]*(.*?)\r?$", self.text, re.MULTILINE | re.IGNORECASE)
        return found.group(1) if found else None

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or self.header("i") or ""

    @property
    def cseq_method(self) -> str:
        cseq = self.header("CSeq") or ""
        return cseq.split()[-1] if cseq.split() else ""


_ENTRY = re.compile(r"^-{20,} .*\n(?:UDP|TCP|TLS|SCTP) message (sent|received).*\n\n", re.MULTILINE)


def read_trace(path: Path) -> list[SipMessage]:
    """Every message of a `-trace_msg` file, in order; none while SIPp has written nothing."""
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    heads = list(_ENTRY.finditer(text))
    messages = []
    for index, head in enumerate(heads):
        end = heads[index + 1].start() if index + 1 < len(heads) else len(text)
        messages.append(SipMessage(sent=head.group(1) == "sent", text=text[head.end():end].strip("\n")))
    return messages


def by_call_id(messages: list[SipMessage]) -> dict[str, list[SipMessage]]:
    """Messages grouped per Call-ID, in the order each Call-ID first appeared."""
    calls: dict[str, list[SipMessage]] = {}
    for message in messages:
        calls.setdefault(message.call_id, []).append(message)
    return calls


class SipPeer(Protocol):
    """What the kit's trunk calls and its phones register with: the gateway (`GatewayProcess`), or
    another SIPp process scripted by a test of the kit itself."""

    @property
    def sip_port(self) -> int: ...

    @property
    def log_path(self) -> Path: ...  # the kit's files go beside it


class SippProcess:
    """One SIPp process: its own ports, a message trace, an error file, a lifetime it cannot outlive."""

    def __init__(self, directory: Path, name: str, arguments: list[str], *, lifetime_s: float,
                 port: int | None = None, host: str = HOST) -> None:
        """`host`: the loopback address SIPp binds (another one than the gateway's is a distinct peer)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self.port = port or free_port()
        self.trace_path = directory / f"{name}.messages.log"
        self.error_path = directory / f"{name}.errors.log"
        self.command = [
            "sipp", "-i", host, "-p", str(self.port), "-mp", str(free_media_port()), "-cp", str(free_port()),
            "-nostdin", "-timeout", f"{max(1, round(lifetime_s))}s",
            "-trace_msg", "-message_file", str(self.trace_path),
            "-trace_err", "-error_file", str(self.error_path), *arguments,
        ]
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=directory,
        )

    def messages(self) -> list[SipMessage]:
        return read_trace(self.trace_path)

    def running(self) -> bool:
        return self.process.poll() is None

    def errors(self) -> str:
        """SIPp's error file (what went wrong in a scenario), for assertion messages."""
        text = self.error_path.read_text(errors="replace") if self.error_path.exists() else ""
        return text[-3000:]

    def wait(self, timeout: float) -> int:
        """The exit code; killed (by its PID) if it has not ended in `timeout` seconds."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return self.process.returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               explain: Callable[[], str] = lambda: "") -> None:
    """Poll `condition` every 20 ms; AssertionError naming `what` (and `explain()`) past `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    if condition():
        return
    raise AssertionError(f"{what} not within {timeout} s\n{explain()}")
