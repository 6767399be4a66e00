"""Transport adapters: the only code that touches sockets and the loop clock."""

from gateway.transport.runtime import SipRuntime
from gateway.transport.tcp import TcpTransport
from gateway.transport.udp import UdpTransport

__all__ = ["SipRuntime", "TcpTransport", "UdpTransport"]
