"""Where `make bench` puts things: ports, paths and the shape of the call-rate ramp."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"

#: Call rates tried in order; a target's ramp stops at its first failing step.
DEFAULT_RATES: tuple[int, ...] = (100, 200, 400, 800, 1200, 1600, 2400, 3200, 4800, 6400)


@dataclass(frozen=True)
class Ports:
    """UDP/TCP ports on 127.0.0.1 used by one bench run (the issue fixes the defaults)."""

    uas: int = 5090
    kamailio: int = 5070
    sippy: int = 5080
    gateway: int = 5060
    gateway_admin: int = 8080
    uac: int = 5061
    # Every SIPp needs its own control port, or two instances fight over 8888.
    uas_control: int = 8890
    uac_control: int = 8891


@dataclass(frozen=True)
class RampPlan:
    """How each target is loaded: rising rates, each step a bounded number of calls."""

    rates: tuple[int, ...] = DEFAULT_RATES
    step_seconds: float = 5.0
    call_ms: int = 1000
    #: A step passes only while retransmissions (uac + uas) stay under this share of its calls.
    max_retrans_ratio: float = 0.01
    #: After the first failure, try once between the last passing and the failing rate.
    refine: bool = True

    def calls_at(self, rate: int) -> int:
        """Number of calls one step places at `rate` calls/s."""
        return max(1, round(rate * self.step_seconds))

    def uac_timeout_s(self) -> int:
        """SIPp's global -timeout for one step: placing, one call length, then room for retransmissions."""
        return int(self.step_seconds + self.call_ms / 1000 + 20)


@dataclass(frozen=True)
class BenchSettings:
    """Everything one bench run needs to know about its surroundings."""

    host: str = "127.0.0.1"
    ports: Ports = field(default_factory=Ports)
    plan: RampPlan = field(default_factory=RampPlan)
    state_dir: Path = BENCH_DIR / ".state"
    project_root: Path = PROJECT_ROOT
    uas_scenario: Path = BENCH_DIR / "uas.xml"
    kamailio_cfg: Path = BENCH_DIR / "kamailio.cfg"
    gateway_config: Path = BENCH_DIR / "gateway-bench.toml"
    #: sippy's UDP worker threads; with its default 3 a 180 can arrive after its 200 and fail the call.
    sippy_workers: int = 1
    sippy_version: str = "2.5.0"
    #: Kamailio's UDP worker processes. Two (one per core, the reference setup) reorder a 180 behind
    #: its 200 now and then, which SIPp's uac counts as a failed call; one compares per core like the rest.
    kamailio_children: int = 1
    #: How long a middle box may take to come up.
    start_timeout_s: float = 30.0

    @property
    def sippy_venv(self) -> Path:
        """The bench-only venv holding sippy (never the project venv)."""
        return self.state_dir / "venv"

    @property
    def results_file(self) -> Path:
        """Machine-readable results of the last run."""
        return self.state_dir / "last.json"
