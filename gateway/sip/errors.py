"""Errors of the sans-IO SIP core.

Each error says whose fault it was. A `RemoteProtocolError` carries the status code the
peer should be answered with when an answer is possible (RFC 3261 §8.2, §21.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.sip.message import Request


class SipError(Exception):
    """Base class of every error raised by `gateway.sip`."""


class RemoteProtocolError(SipError):
    """The peer sent something we cannot accept; answer with `status_hint` when possible.

    `partial` is the request as far as it could be parsed when it holds everything an answer
    needs (start line, Via, From, To, Call-ID, CSeq — RFC 3261 §8.2.6); otherwise None and the
    message can only be dropped.
    """

    def __init__(self, message: str, status_hint: int = 400, partial: Request | None = None) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.partial = partial


class LocalProtocolError(SipError):
    """Our own code asked the core to do something the protocol forbids."""
