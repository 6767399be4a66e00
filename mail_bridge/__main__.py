"""``python -m mail_bridge [--config FILE]``: the mail bridge alone, with its own outbox worker.

Inside ``gateway run`` the gateway's outbox worker carries out the CRM writes; alone, this process runs
one so that synced mail reaches the CRM. Stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from gateway.config import load_config
from gateway.crm_bridge.outbox import OutboxWorker
from gateway.crm_bridge.store import BuiltinCrm
from gateway.storage.session import make_engine, make_sessionmaker, migrate
from mail_bridge.service import run_mail_bridge


async def main(config_path: str) -> None:
    config = load_config(config_path)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    await migrate(config.database.url)
    engine = make_engine(config.database.url)
    sessions = make_sessionmaker(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = OutboxWorker(sessions, BuiltinCrm())
    try:
        await asyncio.gather(
            worker.run_forever(stop=stop),
            run_mail_bridge(sessions, config, stop, on_saved=worker.wake),
        )
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m mail_bridge", description="Sync mailboxes into the CRM.")
    parser.add_argument("--config", default="config/demo.toml")
    asyncio.run(main(parser.parse_args().config))
