"""The routing directory tells its listeners about each snapshot it loads (the trunks' registrations
follow the trunks this way, SPEC T1), and a listener's bug does not undo the reload."""

from __future__ import annotations

import logging

import pytest

from gateway.calls.directory import DirectorySnapshot, RoutingDirectory
from gateway.storage.session import make_engine, make_sessionmaker


async def test_t1_reload_listeners_hear_each_new_snapshot(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(sqlite_url)
    try:
        directory = RoutingDirectory(make_sessionmaker(engine), "gateway.test")
        heard: list[DirectorySnapshot] = []

        def broken(snapshot: DirectorySnapshot) -> None:
            raise RuntimeError("listener bug")

        directory.on_reload += [broken, heard.append]
        with caplog.at_level(logging.ERROR):
            await directory.reload()
            await directory.reload()
        assert len(heard) == 2 and heard[-1] is directory.snapshot and heard[0] is not heard[1]
        assert directory.loaded and "reload listener failed" in caplog.text
    finally:
        await engine.dispose()
