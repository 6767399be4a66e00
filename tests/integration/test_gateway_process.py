"""`gateway run` as a process: it becomes healthy, and SIGTERM stops it cleanly (exit 0)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import HOST, GatewayProcess, _wait_healthy, free_port


def test_sigterm_stops_the_gateway_cleanly(tmp_path: Path) -> None:
    sip_port, admin_port = free_port(), free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[sip]\nlisten = ["udp:{HOST}:{sip_port}", "tcp:{HOST}:{sip_port}"]\n[admin]\nlisten = "{HOST}:{admin_port}"\n'
    )
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    running = GatewayProcess(process, sip_port, admin_port, 0, 0, log_path)
    try:
        _wait_healthy(running, time.monotonic() + 20)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, running.log()
        assert "gateway stopped" in running.log()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
