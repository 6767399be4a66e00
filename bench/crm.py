"""The harness for the CRM rows of `make bench` (prepared, not yet in the run's row list).

A CRM row is the gateway started on a given config and database (seeded beforehand with a number,
a queue group and an employee whose extension is the `CrmSetup.extension`), an employee's phone
that REGISTERs that extension with digest and answers every call (bench/uas_register.xml with
bench/uas.xml as its out-of-call scenario), and a caller dialling the number from a new number on
every call or from one of a few known callers (bench/uac_callers.xml with an -inf file).
`run_crm_row` is the one entry point; the lead wires it into bench/__main__.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import make_url

from bench.procs import wait_for
from bench.ramp import (
    CURRENT,
    FAILED,
    SUCCESS,
    Pair,
    StepResult,
    TargetResult,
    Uas,
    run_half_rate,
    run_target,
)
from bench.settings import BENCH_DIR, BenchSettings
from bench.targets import Gateway, MiddleBox, TargetUnavailable

CallerMode = Literal["new", "known"]
REGISTER_SCENARIO = BENCH_DIR / "uas_register.xml"
CALLER_SCENARIO = BENCH_DIR / "uac_callers.xml"


@dataclass(frozen=True)
class CrmSetup:
    """What the seeded database holds that the SIP side must match."""

    number: str = "+493000000100"  # the gateway number the caller dials (Request-URI user)
    extension: str = "1001"  # the employee's extension = SIP user of their phone
    secret: str = "bench-secret-1001"  # the extension's SIP secret (digest)
    #: Callers the CRM already knows (each with the employee as responsible), for caller_mode "known".
    known_callers: tuple[str, ...] = ("+491701000001", "+491701000002", "+491701000003", "+491701000004")


def caller_numbers(mode: CallerMode, calls: int, setup: CrmSetup, salt: int) -> list[str]:
    """The From user of each call: `calls` numbers never used before (new), or the known set (known).

    `salt` (e.g. the run's start second) keeps new callers new across runs on one database.
    """
    if mode == "known":
        return list(setup.known_callers)
    if mode != "new":
        raise ValueError(f"caller_mode {mode!r}: use 'new' or 'known'")
    # +49 1520 then 9 digits: a well-formed German mobile number (E.164, 14 digits).
    base = (salt % 1000) * 1_000_000
    return [f"+491520{base + index:09d}" for index in range(calls)]


def write_injection_file(path: Path, numbers: list[str], mode: CallerMode) -> Path:
    """SIPp -inf file: SEQUENTIAL (one line per call) for new callers, RANDOM among known ones."""
    order = "SEQUENTIAL" if mode == "new" else "RANDOM"
    path.write_text(order + "\n" + "".join(f"{number};\n" for number in numbers))
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A TOML document for the gateway's config shape: scalars, arrays, tables, arrays of tables."""
    def is_tables(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)

    lines = [f"{key} = {_toml_value(v)}" for key, v in data.items() if not isinstance(v, dict) and not is_tables(v)]
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines += [f"\n[{name}]", to_toml(value, name + ".").rstrip("\n")]
        elif is_tables(value):
            lines += [f"\n[[{name}]]\n" + to_toml(item, name + ".").rstrip("\n") for item in value]
    return "\n".join(line for line in lines if line) + "\n"


def write_gateway_config(config: Path, db_url: str, out: Path, settings: BenchSettings) -> Path:
    """`config` with `[database] url = db_url`, and SIP/admin on the bench's ports, written to `out`."""
    data = tomllib.loads(config.read_text())
    data.setdefault("database", {})["url"] = db_url
    s = settings
    data.setdefault("sip", {})["listen"] = [f"udp:{s.host}:{s.ports.gateway}"]
    data.setdefault("admin", {})["listen"] = f"{s.host}:{s.ports.gateway_admin}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_toml(data))
    return out


class RegisteringUas(Uas):
    """The employee's phone: registers, then answers every call as an out-of-call scenario.

    SIPp counts an out-of-call call as AutoAnswered when it begins and never as successful, and
    the idle registering call stays current: the counters are mapped to what the plain uas reports.
    """

    def __init__(self, settings: BenchSettings, workdir: Path, setup: CrmSetup, log: Path) -> None:
        super().__init__(settings, workdir, scenario=REGISTER_SCENARIO, extra_argv=[
            f"{settings.host}:{settings.ports.gateway}", "-s", setup.extension, "-au", setup.extension,
            "-ap", setup.secret, "-trace_logs", "-log_file", str(log), "-m", "1"])

    def counters(self) -> dict[str, int] | None:
        raw = super().counters()
        if raw is None:
            return None
        return {**raw, SUCCESS: raw["AutoAnswered(C)"] - raw[FAILED], CURRENT: max(0, raw[CURRENT] - 1)}


#: A CRM step passes only when its writes (call log, leads, activities) are all made this soon after
#: its last call: a rate whose writes fall further behind every second is not one the gateway sustains.
WRITES_GRACE_S = 5.0


class CrmPair(Pair):
    """The gateway first (its registrar must be up), then the phone that registers, then steps."""

    def __init__(self, box: MiddleBox, settings: BenchSettings, setup: CrmSetup, mode: CallerMode,
                 database: Path | None = None) -> None:
        super().__init__(box, settings)
        self.setup, self.mode = setup, mode
        self.database = database  # the SQLite file, to check the CRM writes kept up
        self.placed = 0

    def step(self, rate: int) -> StepResult:
        step = super().step(rate)
        self.placed += step.calls
        if self.database is None or not _is_a_number(self.database, self.setup.number):
            return step  # a static route's calls are not the numbers': nothing goes to the call log
        began = time.monotonic()
        if wait_for(lambda: _writes_done(self.database, self.placed), WRITES_GRACE_S, 0.2):
            step.crm_written_s = time.monotonic() - began
        else:
            logged, pending = _write_backlog(self.database)
            step.passed = False
            step.reason = "; ".join(filter(None, [step.reason, (
                f"CRM writes behind {WRITES_GRACE_S:g} s after the step: {self.placed - logged} of "
                f"{self.placed} calls not ended in the call log, {pending} CRM writes pending")]))
            # Let the backlog drain so the next step starts level (and report how long it took).
            if wait_for(lambda: _writes_done(self.database, self.placed), 120, 0.5):
                step.crm_written_s = time.monotonic() - began
        return step

    def __enter__(self) -> CrmPair:
        try:
            self.box.start()
            log = self.box.workdir / "uas_logs.log"
            log.unlink(missing_ok=True)
            self.uas = uas = RegisteringUas(self.settings, self.box.workdir, self.setup, log)
            if not wait_for(lambda: "registered" in _read(log) or not uas.child.alive(), 15):
                raise TargetUnavailable(f"extension {self.setup.extension} did not register within 15 s "
                                        f"(see {self.box.workdir / 'uas_errors.log'})")
            if not uas.child.alive():
                raise TargetUnavailable(f"the registering uas exited: {uas.child.log_tail(3)}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def uac_argv(self, rate: int, calls: int, step_dir: Path) -> list[str]:
        argv = super().uac_argv(rate, calls, step_dir)
        numbers = caller_numbers(self.mode, calls, self.setup, int(time.time()))
        inf = write_injection_file(step_dir / "callers.csv", numbers, self.mode)
        at = argv.index("-sn")
        argv[at:at + 2] = ["-sf", str(CALLER_SCENARIO)]
        return [*argv, "-inf", str(inf), "-s", self.setup.number]


def _write_backlog(database: Path) -> tuple[int, int]:
    """(calls whose end is in the call log, CRM writes pending) in the row's SQLite database."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as connection:
        logged = connection.execute("SELECT count(*) FROM calls WHERE ended_at IS NOT NULL").fetchone()[0]
        pending = connection.execute("SELECT count(*) FROM outbox_entries WHERE status = 'pending'").fetchone()[0]
    return int(logged), int(pending)


def _is_a_number(database: Path, number: str) -> bool:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as connection:
        return connection.execute("SELECT 1 FROM numbers WHERE e164 = ?", (number,)).fetchone() is not None


def _writes_done(database: Path, placed: int) -> bool:
    try:
        logged, pending = _write_backlog(database)
    except sqlite3.Error:
        return False
    return logged >= placed and pending == 0


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def run_crm_row(config: Path, db_url: str, caller_mode: CallerMode, *, name: str | None = None,
                setup: CrmSetup = CrmSetup(), settings: BenchSettings | None = None,
                half_seconds: float = 20.0, say: Any = print) -> TargetResult:
    """One CRM row: ramp, probes and the steady half-rate run, as the plain gateway row gets them.

    config: a gateway TOML whose routing reaches the seeded number's queue group (its [database]
      url and its SIP/admin listen addresses are replaced by `db_url` and the bench's ports).
    db_url: a SQLAlchemy URL of a database already migrated and seeded with `setup.number`, a
      queue group on it, and an employee with extension `setup.extension` and SIP secret
      `setup.secret` in that group (and, for "known", `setup.known_callers` as their contacts).
    caller_mode: "new" gives every call a never-seen caller number (lookup, lead, activity and call
      log on every call); "known" picks among `setup.known_callers` (lookup, route to the responsible).
    Returns the row's TargetResult: max_cps, best step's setup times and CPU/memory, `half`
    (p50/p99 at half the max rate) and `half_gc` (the gateway's GC pauses in that run).
    """
    settings = settings or BenchSettings()
    row = name or f"crm-{caller_mode}"
    workdir = settings.state_dir / row
    box = Gateway(settings, write_gateway_config(config, db_url, workdir.parent / f"{row}.toml", settings), row)

    url = make_url(db_url)
    database = Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None

    def pair(box: MiddleBox, steps: BenchSettings) -> Pair:
        return CrmPair(box, steps, setup, caller_mode, database)

    result = run_target(box, settings, say, TargetResult(row), pair=pair)
    if half_seconds > 0 and result.max_cps:
        run_half_rate(box, settings, half_seconds, say, result, pair=pair)
    return result
