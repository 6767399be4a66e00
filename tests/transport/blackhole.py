"""A TCP port on 127.0.0.1 that swallows connection attempts, as a firewalled or dead host does.

A listening socket with a backlog of 0 whose one queue slot is taken and never accepted: the kernel
drops every further SYN (net.ipv4.tcp_abort_on_overflow is 0 by default), so a connect neither
succeeds nor is refused; it waits out the SYN retries. Real sockets, no fake.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

HOST = "127.0.0.1"


@contextmanager
def blackhole(port: int = 0) -> Iterator[int]:
    """Yield the port of a listener whose accept queue is full (`port` 0 picks a free one)."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind((HOST, port))
        listener.listen(0)
        filler.connect(listener.getsockname())  # takes the only slot; nobody ever accepts it
        yield listener.getsockname()[1]
