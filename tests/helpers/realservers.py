"""Throwaway real servers for tests, bound to 127.0.0.1 on free ports and stopped by their own PID.

PostgreSQL: `initdb` into a fresh directory under /tmp and run `postgres` directly (so the PID we hold is
the postmaster). initdb and postgres refuse to run as root; as root they run as the `postgres` account
through `setpriv`. The directory is not pytest's tmp_path: its pytest-of-USER parent is 0700, so the
`postgres` account could not reach it.

dnsmasq: a DNS server answering only from its command line (`--host-record`, `--srv-host`), NXDOMAIN for
every other name under its `--local` domain, run in the foreground and logging each query to a file.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import ports

PG_START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (below the ephemeral range: ports.py)."""
    return ports.free_port(udp=False)


def private_dir(prefix: str) -> Path:
    """A fresh directory under /tmp (reachable by the unprivileged account a server may run as)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")).resolve()


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM, grace: float = 10.0) -> None:
    """Stop one process we started, by its PID: `sig`, then SIGKILL if it outlives `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_as(account: str) -> tuple[list[str], int, int]:
    """As root: an argv prefix running a command as `account`; otherwise run as ourselves."""
    if os.getuid() != 0:
        return [], os.getuid(), os.getgid()
    entry = pwd.getpwnam(account)
    prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"]
    return prefix, entry.pw_uid, entry.pw_gid


def pg_bindir() -> Path:
    """The bin directory of the newest PostgreSQL installed under /usr/lib/postgresql."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if not candidates:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return candidates[-1].parent


@dataclass
class Postgres:
    """A running throwaway PostgreSQL cluster (user `postgres`, trust authentication)."""

    proc: subprocess.Popen[bytes]
    dir: Path
    port: int
    _names: itertools.count[int]
    run_as: str = "postgres"  # the account the postmaster runs as when we are root

    @property
    def log(self) -> str:
        """The server log so far."""
        path = self.dir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self, dbname: str = "postgres", driver: str = "asyncpg") -> str:
        """A SQLAlchemy URL for database `dbname` with `driver` (asyncpg, psycopg)."""
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "db", template: str | None = None) -> str:
        """CREATE a new database with a unique name (copied from `template` if given); returns the name."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"{clause}')
        return name


def start_postgres(run_as: str = "postgres") -> Postgres:
    """initdb a new cluster under /tmp and start it on a free port; raises with the log if it fails."""
    directory = private_dir("pg-")
    bindir = pg_bindir()
    prefix, uid, gid = _run_as(run_as)
    if os.getuid() == 0:
        os.chown(directory, uid, gid)
    initdb = subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(directory / "data"), "-U", "postgres", "-A", "trust",
         "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, check=False,
    )
    if initdb.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout.decode(errors='replace')}")
    port = free_port()
    server = Postgres(_spawn_postgres(directory, port, run_as), directory, port, itertools.count(1), run_as)
    _wait_ready(server)
    return server


def _spawn_postgres(directory: Path, port: int, run_as: str) -> subprocess.Popen[bytes]:
    """The postmaster on `directory`/data and 127.0.0.1:`port`, appending to `directory`/postgres.log."""
    prefix, _, _ = _run_as(run_as)
    with open(directory / "postgres.log", "ab") as log:
        return subprocess.Popen(
            [*prefix, str(pg_bindir() / "postgres"), "-D", str(directory / "data"), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={directory}",
             # Throwaway data: durability costs time and buys nothing here.
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "shared_buffers=32MB", "-c", "max_connections=100"],
            stdout=log, stderr=subprocess.STDOUT,
        )


def _wait_ready(server: Postgres) -> None:
    """Until the server accepts connections; stops it and raises with its log past PG_START_TIMEOUT."""
    deadline = time.monotonic() + PG_START_TIMEOUT
    while True:
        ready = subprocess.run(
            [str(pg_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres"],
            check=False,
        )
        if ready.returncode == 0:
            return
        if server.proc.poll() is not None or time.monotonic() > deadline:
            log_text = server.log
            stop_postgres(server)
            raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{server.port}; its log:\n{log_text}")
        time.sleep(0.05)


def halt_postgres(server: Postgres) -> None:
    """Fast shutdown by the postmaster's PID, keeping its data: `restart_postgres` brings it back.

    Fast (SIGINT), not smart (SIGTERM): a smart shutdown waits for every client to disconnect, and a
    connection pool never does.
    """
    stop(server.proc, signal.SIGINT)


def restart_postgres(server: Postgres) -> None:
    """Start a halted server again on the same data directory and port; raises with the log if it fails."""
    if server.proc.poll() is None:
        raise RuntimeError(f"PostgreSQL on 127.0.0.1:{server.port} is still running (PID {server.proc.pid})")
    server.proc = _spawn_postgres(server.dir, server.port, server.run_as)
    _wait_ready(server)


def stop_postgres(server: Postgres) -> None:
    """Fast shutdown (SIGINT: does not wait for clients) by the postmaster's PID; removes its directory."""
    stop(server.proc, signal.SIGINT)
    shutil.rmtree(server.dir, ignore_errors=True)


DNSMASQ_START_TIMEOUT = 10.0


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now (below the ephemeral range: ports.py)."""
    return ports.free_port(tcp=False)


@dataclass
class Dnsmasq:
    """A running dnsmasq on 127.0.0.1:`port`, answering for the `domain` it was started with."""

    proc: subprocess.Popen[bytes]
    dir: Path
    port: int

    @property
    def log(self) -> str:
        """Every query so far (``--log-queries``), with dnsmasq's start-up lines."""
        path = self.dir / "dnsmasq.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def queries(self, name: str, rdtype: str | None = None) -> int:
        """How many questions for `name` (of `rdtype`, e.g. "A", "SRV"; any type if None) it received."""
        kind = re.escape(rdtype) if rdtype else r"[A-Z0-9]+"
        return len(re.findall(rf"query\[{kind}\] {re.escape(name)} from ", self.log))


def start_dnsmasq(*records: str, domain: str = "test", ttl: int = 60) -> Dnsmasq:
    """dnsmasq on a free port answering `records` (dnsmasq options such as
    "--host-record=pbx.test,127.0.0.1" or "--srv-host=_sip._udp.pbx.test,uas.test,5062,10,5") with `ttl`
    seconds; other names under `domain` are NXDOMAIN. Raises with its log if it does not answer."""
    import dns.exception
    import dns.message
    import dns.query

    directory = private_dir("dnsmasq-")
    port = free_udp_port()
    # As root dnsmasq would switch to "nobody", who could not write the log in our directory.
    user = ["--user=root"] if os.getuid() == 0 else []
    proc = subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
         "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={port}", f"--local=/{domain}/",
         f"--local-ttl={ttl}", "--log-queries", f"--log-facility={directory / 'dnsmasq.log'}", *user, *records],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    server = Dnsmasq(proc, directory, port)
    probe = dns.message.make_query(f"ready.{domain}", "A")
    deadline = time.monotonic() + DNSMASQ_START_TIMEOUT
    while True:
        try:
            dns.query.udp(probe, "127.0.0.1", port=port, timeout=0.2)
            return server
        except (dns.exception.Timeout, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            assert proc.stderr is not None
            problem = proc.stderr.read().decode(errors="replace") + server.log
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"dnsmasq did not answer on 127.0.0.1:{port}:\n{problem}")


def stop_dnsmasq(server: Dnsmasq) -> None:
    """Stop dnsmasq by its PID and remove its directory."""
    stop(server.proc)
    if server.proc.stderr is not None:
        server.proc.stderr.close()
    shutil.rmtree(server.dir, ignore_errors=True)
