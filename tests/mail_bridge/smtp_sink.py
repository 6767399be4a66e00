"""A real SMTP listener (aiosmtpd) on a loopback port of the test's own loop: what the relay received."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.smtp import SMTP


@dataclass
class Received:
    """One mail as the listener took it: envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> Message:
        return message_from_bytes(self.content)


@dataclass
class SmtpSink:
    """The handler: keeps every accepted mail; refuses the recipients in ``refuse`` with a 550."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    port: int = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 2.0.0 queued as test"


async def start_sink() -> tuple[SmtpSink, asyncio.Server]:
    """Listen on 127.0.0.1 on a free port; close the server when done."""
    sink = SmtpSink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="relay.test"), "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    return sink, server
