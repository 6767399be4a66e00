"""Errors of the sans-IO SIP core.

Each error says whose fault it was. A `RemoteProtocolError` carries the status code the
peer should be answered with when an answer is possible (RFC 3261 §8.2, §21.4).
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error raised by `gateway.sip`."""


class RemoteProtocolError(SipError):
    """The peer sent something we cannot accept; answer with `status_hint` when possible."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(SipError):
    """Our own code asked the core to do something the protocol forbids."""
