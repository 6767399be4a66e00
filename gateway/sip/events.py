"""What a `SipEndpoint` tells its user. Pure data; the transport adapter and the B2BUA consume them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.sip.message import Request, Response

if TYPE_CHECKING:
    from gateway.sip.transaction import ClientTransaction, ServerTransaction

# Where a message came from or goes to: (transport "udp"|"tcp"|"tls", host, port).
Target = tuple[str, str, int]


@dataclass(slots=True)
class RequestReceived:
    """A new request. `transaction` is None for ACK (of a 2xx) and for stray CANCEL handling."""

    request: Request
    source: Target
    transaction: ServerTransaction | None


@dataclass(slots=True)
class ResponseReceived:
    """A response matched to one of our client transactions (or a stray 2xx retransmission)."""

    response: Response
    source: Target
    transaction: ClientTransaction | None


@dataclass(slots=True)
class TransactionTimedOut:
    """Timer B/F fired: no final response. The user should act as if 408 was received."""

    transaction: ClientTransaction


@dataclass(slots=True)
class TransportFailed:
    """The transport could not carry the request of `transaction` (a refused or dead TCP connection).

    RFC 3261 §8.1.3.1 / §17.1.4: the transaction is over and the user should act as if 503 was received.
    """

    transaction: ClientTransaction


@dataclass(slots=True)
class TransactionTerminated:
    """A transaction reached Terminated; its state can be dropped."""

    transaction: ClientTransaction | ServerTransaction


@dataclass(slots=True)
class CancelReceived:
    """A CANCEL matched an INVITE still unanswered; its 200 is sent. The TU answers the INVITE 487."""

    request: Request
    source: Target
    invite_transaction: ServerTransaction


@dataclass(slots=True)
class AckNotReceived:
    """Our 2xx to an INVITE was retransmitted for 64*T1 without an ACK (§13.3.1.4): send BYE."""

    transaction: ServerTransaction


@dataclass(slots=True)
class MalformedMessage:
    """Bytes that were not SIP; `status` was already answered when not None."""

    source: Target
    reason: str
    status: int | None


Event = (
    RequestReceived
    | ResponseReceived
    | CancelReceived
    | AckNotReceived
    | TransactionTimedOut
    | TransportFailed
    | TransactionTerminated
    | MalformedMessage
)
