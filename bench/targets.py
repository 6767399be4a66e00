"""The middle boxes `make bench` loads: none (SIPp direct), the gateway, sippy's b2bua and Kamailio."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.procs import Child, udp_port_bound, wait_for
from bench.settings import BenchSettings


class TargetUnavailable(Exception):
    """The middle box could not be started; the message says why, for the results table."""


class MiddleBox:
    """A SIP hop between the uac and the uas. The base class is the empty hop: SIPp direct."""

    name = "direct"

    def __init__(self, settings: BenchSettings) -> None:
        self.settings = settings
        self.child: Child | None = None

    @property
    def port(self) -> int:
        """UDP port the uac sends its calls to."""
        return self.settings.ports.uas

    @property
    def pid(self) -> int | None:
        """PID whose process tree is measured (CPU, memory), if there is one."""
        return self.child.pid if self.child else None

    @property
    def workdir(self) -> Path:
        """This target's files (logs, SIPp traces) for the current run."""
        return self.settings.state_dir / self.name

    def start(self) -> None:
        """Start the box and return once it takes calls; raise TargetUnavailable otherwise."""

    def died(self) -> str | None:
        """Why the box is gone, or None while it runs."""
        if self.child is None or self.child.alive():
            return None
        return (f"{self.name} exited with code {self.child.popen.returncode}: {self.child.log_tail(1)} "
                f"(log: {self.child.log})")

    def stop(self) -> None:
        """Stop the box (by the PID we started)."""
        if self.child is not None:
            self.child.stop()
            self.child = None

    def _launch(self, argv: list[str], port: int, timeout_s: float, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> None:
        if udp_port_bound(self.settings.host, port):
            raise TargetUnavailable(f"UDP port {port} is already in use (a leftover bench or service?)")
        self.child = Child(self.name, argv, self.workdir / f"{self.name}.log", cwd=cwd, env=env)
        if not wait_for(lambda: udp_port_bound(self.settings.host, port) or not self.child.alive(), timeout_s):
            raise TargetUnavailable(f"{self.name} did not bind UDP port {port} within {timeout_s:.0f} s")
        reason = self.died()
        if reason:
            raise TargetUnavailable(reason)


class Kamailio(MiddleBox):
    """Kamailio as a stateful (tm) proxy relaying everything to the uas."""

    name = "kamailio"

    @property
    def port(self) -> int:
        return self.settings.ports.kamailio

    def start(self) -> None:
        s, run_dir = self.settings, self.workdir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        pidfile = self.workdir / "kamailio.pid"
        # Kamailio refuses to start while its pidfile names a live PID; this file is only ever ours.
        pidfile.unlink(missing_ok=True)
        argv = [
            "kamailio", "-f", str(s.kamailio_cfg), "-P", str(pidfile), "-Y", str(run_dir),
            "-w", str(self.workdir),
            # tm keeps each finished transaction ~5 s, so shared memory follows the call rate:
            # 256 MB ran out near 1600 calls/s and Kamailio answered 500.
            "-m", "1024", "-M", "8",
            "-A", f"LISTEN_PORT={s.ports.kamailio}", "-A", f'UAS_URI="sip:{s.host}:{s.ports.uas}"',
            "-A", f"CHILDREN={s.kamailio_children}",
            "-DD", "-E",
        ]
        self._launch(argv, s.ports.kamailio, 15)


class Sippy(MiddleBox):
    """sippy's b2bua (PyPI sippy, in a venv of the bench's own) with a static route to the uas."""

    name = "sippy"

    @property
    def port(self) -> int:
        return self.settings.ports.sippy

    def start(self) -> None:
        s = self.settings
        python = ensure_sippy_venv(s)
        # -f: foreground (else it daemonises under /var/run); -u -A 0: no RADIUS (else every call
        # fails); -s: static route; -c/-P/-L: keep its socket and files in our state dir.
        args = [
            "-f", "-l", s.host, "-p", str(s.ports.sippy), "-s", f"{s.host}:{s.ports.uas}", "-u", "-A", "0",
            "-c", str(self.workdir / "b2bua.sock"), "-P", str(self.workdir / "b2bua-daemon.pid"),
            "-L", str(self.workdir / "b2bua-daemon.log"),
        ]
        # sippy has no flag for its UDP worker threads; with several, a 180 can overtake its 200 and
        # SIPp's uac fails the call, so the class default is set before b2bua's main runs.
        boot = ("import sys, sippy.Udp_server as u\n"
                "u.Udp_server_opts.nworkers = int(sys.argv.pop(1))\n"
                "from sippy.b2bua import main_func\n"
                "sys.exit(main_func())")
        # SIPLOG_BEND=none: sippy otherwise logs every SIP message to stderr.
        env = dict(os.environ, SIPLOG_BEND="none")
        self._launch([str(python), "-c", boot, str(s.sippy_workers), *args], s.ports.sippy, 20, env=env)


def ensure_sippy_venv(settings: BenchSettings) -> Path:
    """Python of the bench-only venv with sippy at the pinned version, created on first use."""
    venv, wanted = settings.sippy_venv, settings.sippy_version
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('sippy'))"]
    if python.exists() and _output(probe) == wanted:
        return python
    print(f"bench: installing sippy=={wanted} into {venv} (bench-only venv)", flush=True)
    steps = [[sys.executable, "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "-q",
                                                         f"sippy=={wanted}"]]
    for step in steps if not python.exists() else steps[1:]:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise TargetUnavailable(f"could not set up {venv}: {' | '.join(tail)}")
    if _output(probe) != wanted:
        raise TargetUnavailable(f"sippy {wanted} is not importable from {venv}")
    return python


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


class Gateway(MiddleBox):
    """This project's gateway, as `gateway run --config FILE` under bench/gc_probe.py.

    `config` defaults to bench/gateway-bench.toml; the probe writes the gateway's GC pauses to
    `gc_file` when it stops. `name` tells rows on one config apart (e.g. the CRM rows)."""

    name = "gateway"

    def __init__(self, settings: BenchSettings, config: Path | None = None, name: str | None = None) -> None:
        super().__init__(settings)
        self.config = config or settings.gateway_config
        if name is not None:
            self.name = name
        #: Unix time the gateway was healthy: GC pauses before it were start-up's, not the calls'.
        self.ready_at = 0.0

    @property
    def port(self) -> int:
        return self.settings.ports.gateway

    @property
    def gc_file(self) -> Path:
        """The GC pause figures of the last run (bench/gc_probe.py), once the gateway stopped."""
        return self.workdir / "gc.json"

    def start(self) -> None:
        s = self.settings
        if udp_port_bound(s.host, s.ports.gateway):
            raise TargetUnavailable(f"UDP port {s.ports.gateway} is already in use (a leftover gateway?)")
        self.gc_file.unlink(missing_ok=True)
        # `-m` from the project root imports this checkout's gateway whatever the venv was installed from.
        argv = [sys.executable, "-m", "bench.gc_probe", str(self.gc_file), "run", "--config", str(self.config)]
        env = dict(os.environ, PYTHONPATH=str(s.project_root))
        self.child = Child(self.name, argv, self.workdir / "gateway.log", cwd=s.project_root, env=env)
        self._wait_healthy()
        self.ready_at = time.time()

    def _wait_healthy(self) -> None:
        """Healthy = GET /healthz answers 200; until /healthz exists, a bound SIP port will do."""
        s = self.settings
        url = f"http://{s.host}:{s.ports.gateway_admin}/healthz"
        deadline = time.monotonic() + s.start_timeout_s
        sip_bound_since: float | None = None
        while time.monotonic() < deadline:
            reason = self.died()
            if reason:
                raise TargetUnavailable(reason)
            status = _http_status(url)
            if status == 200:
                return
            if udp_port_bound(s.host, s.ports.gateway):
                sip_bound_since = sip_bound_since or time.monotonic()
                # A 404 means the admin API runs without /healthz: no point waiting for it.
                if status == 404 or time.monotonic() - sip_bound_since > 3:
                    return
            time.sleep(0.2)
        raise TargetUnavailable(f"gateway not healthy within {s.start_timeout_s:.0f} s "
                                f"(no 200 from {url}, UDP {s.ports.gateway} not bound)")


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def make_targets(settings: BenchSettings, names: list[str]) -> list[MiddleBox]:
    """Target objects for `names`, in that order."""
    kinds: dict[str, type[MiddleBox]] = {"direct": MiddleBox, "gateway": Gateway, "sippy": Sippy,
                                         "kamailio": Kamailio}
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(kinds)}")
    return [kinds[n](settings) for n in names]
