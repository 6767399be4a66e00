"""The test servers' ports (tests/helpers/ports.py): free, distinct, and out of the kernel's way."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import ports


def test_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    start = ports._ephemeral_start()
    picked = [ports.free_port() for _ in range(50)]
    assert len(set(picked)) == 50 and all(ports.LOWEST <= port < start for port in picked)
    media = ports.free_port(tcp=False, span=4)
    assert not set(range(media, media + 4)) & set(picked) and media + 4 <= start
    for port in picked[:5]:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.bind((ports.HOST, port))


class _Offers:
    """A stand-in for the random choice: offers these ports, in order."""

    def __init__(self, *offered: int) -> None:
        self.offered = list(offered)

    def randrange(self, low: int, high: int) -> int:
        return self.offered.pop(0)


def test_a_port_something_already_listens_on_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    taken, free = ports.free_port(), ports.free_port()
    ports._HANDED_OUT.difference_update({taken, free})  # as if another program, not the tests, held `taken`
    with socket.socket() as listener:
        listener.bind((ports.HOST, taken))
        listener.listen()
        monkeypatch.setattr(ports, "_CHOICE", _Offers(taken, free))
        assert ports.free_port() == free
