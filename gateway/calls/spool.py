"""The call journal's crash-safe spool: every call's journal records in local append-only files.

SPEC C2/C4 after a `kill -9`: the journal keeps a call's pending writes (its start, answer, transfers,
end) until the database takes them; without a spool a crash loses them. Each record is appended to the
active segment as one JSON line and flushed (one `write()` per record): the kernel keeps what a killed
process wrote, so no fsync per call — only a power loss or a kernel crash can lose the last records,
and the spool is no worse than the database's own `synchronous_commit` there.

Files: `<dir>/segment-<n>.jsonl`, a new segment every start and whenever the active one passes
`segment_bytes`. A line is `{"c": Call-ID, "k": kind, "d": data}`; kind "done" says the database holds
the whole call. The oldest segments are deleted once every call with a record in them is done, so the
spool holds what was written since the oldest call not yet in the database (a call still up, or a
backlog during an outage) plus the active segment. `open()` reads what a previous run left: the calls not
done, in the order they came, for the journal to replay (`CallJournal.replay`).

A lock file (`flock`) keeps two gateways off one spool; the kernel releases it when a process dies.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gateway.config import JournalConfig

log = logging.getLogger(__name__)

DONE = "done"
_CALL_PREFIX = b'{"c":"'  # how every line `_write` writes begins: the Call-ID comes first
_DECODER = json.JSONDecoder()
_LINE_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
_PREFIX, _SUFFIX = "segment-", ".jsonl"


def record_line(call_id: str, kind: str, data: dict[str, Any] | None) -> bytes:
    """One record as a line of the spool (the writer process reads the same format); a "done" mark
    has no data."""
    record: dict[str, Any] = {"c": call_id, "k": kind} if data is None else {"c": call_id, "k": kind, "d": data}
    return orjson.dumps(record, default=str, option=_LINE_OPTIONS)


class SpoolError(OSError):
    """The spool directory cannot be used (not writable, or another gateway holds it)."""


@dataclass
class SpooledCall:
    """One call's records as the spool holds them, in the order they were written."""

    call_id: str
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class CallSpool:
    """Append-only JSON-lines segments of journal records; see the module docstring."""

    def __init__(self, directory: Path, *, segment_bytes: int = 4 << 20) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._lock: IO[bytes] | None = None
        self._file: IO[bytes] | None = None
        self._active = 0
        self._size = 0
        self._segments: dict[int, set[str]] = {}  # segment → calls with a record there, not done
        self._where: dict[str, set[int]] = {}  # call not done → the segments holding its records
        self.bytes = 0  # of every segment on disk
        self.replayed = 0
        self.last_written: datetime | None = None  # by the previous run: when it was last known alive

    # -- start and stop ----------------------------------------------------------------------
    def open(self) -> list[SpooledCall]:
        """Lock the directory, read what a previous run left, start a new active segment.
        Returns the calls not done, in the order of their first record."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.directory / "lock", "ab")  # noqa: SIM115 - held until close()
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolError(f"call spool {self.directory}: another gateway uses it; give each its own "
                             "[journal] spool_dir") from None
        except OSError as error:
            raise SpoolError(f"call spool {self.directory}: {error.strerror}; set [journal] spool_dir to a "
                             "writable directory") from None
        pending = self._read_previous()
        self._active = max(self._segments, default=0) + 1
        self._start_segment()
        self._drop_written()
        self.replayed = len(pending)
        return pending

    def close(self) -> None:
        for handle in (self._file, self._lock):
            if handle is not None:
                handle.close()
        self._file = self._lock = None

    # -- writing -----------------------------------------------------------------------------
    def append(self, call_id: str, kind: str, data: dict[str, Any]) -> None:
        """Write one record of `call_id` (flushed before this returns)."""
        self.append_line(call_id, record_line(call_id, kind, data))

    def append_line(self, call_id: str, line: bytes) -> None:
        """Write one record of `call_id` already made into its line (`record_line`): the journal sends
        the same line to the writer process."""
        self._write_line(line)
        self._segments[self._active].add(call_id)
        self._where.setdefault(call_id, set()).add(self._active)
        self._rotate_when_full()

    def done(self, call_id: str) -> None:
        """The database holds the whole call: forget it, deleting the segments nothing else needs."""
        segments = self._where.pop(call_id, None)
        if segments is None:
            return
        self._write_line(record_line(call_id, DONE, None))
        for segment in segments:
            self._segments.get(segment, set()).discard(call_id)
        self._drop_written()
        self._rotate_when_full()

    def records(self, call_ids: Iterable[str]) -> list[SpooledCall]:
        """The records of `call_ids` (calls not done), read back from disk, in the order of their first
        record (the journal's work spilled to the spool during an outage)."""
        wanted = {call_id: SpooledCall(call_id) for call_id in call_ids if call_id in self._where}
        segments = sorted({segment for call_id in wanted for segment in self._where[call_id]})
        order: dict[str, None] = {}
        for segment in segments:
            for call_id, kind, data in _lines(self._path(segment), wanted):
                if call_id in wanted and kind != DONE:
                    order.setdefault(call_id)
                    wanted[call_id].records.append((kind, data))
        return [wanted[call_id] for call_id in order]

    @property
    def calls(self) -> int:
        """Calls with records not yet all in the database."""
        return len(self._where)

    @property
    def segments(self) -> int:
        return len(self._segments)

    # -- internals ---------------------------------------------------------------------------
    def _path(self, segment: int) -> Path:
        return self.directory / f"{_PREFIX}{segment:08d}{_SUFFIX}"

    def _write_line(self, line: bytes) -> None:
        if self._file is None:
            raise SpoolError(f"call spool {self.directory} is not open")
        self._file.write(line)
        self._file.flush()  # into the kernel now: a kill -9 after this keeps the record
        self._size += len(line)
        self.bytes += len(line)

    def _rotate_when_full(self) -> None:
        if self._size < self.segment_bytes:
            return
        self._active += 1
        self._start_segment()
        self._drop_written()

    def _drop_written(self) -> None:
        """Delete the oldest segments while every call in them is done. Oldest first only: a call's done
        mark may sit in a later segment than its records, and must outlive them."""
        for segment in sorted(self._segments):
            if segment == self._active or self._segments[segment]:
                return
            self._delete(segment)

    def _start_segment(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = open(self._path(self._active), "ab")  # noqa: SIM115 - the active segment stays open
        self._size = 0
        self._segments[self._active] = set()

    def _delete(self, segment: int) -> None:
        self._segments.pop(segment, None)
        path = self._path(segment)
        try:
            self.bytes -= path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            pass

    def _read_previous(self) -> list[SpooledCall]:
        found: dict[str, SpooledCall] = {}
        last_written = 0.0
        for path in sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")):
            segment = int(path.name[len(_PREFIX):-len(_SUFFIX)])
            stat = path.stat()
            self.bytes += stat.st_size
            last_written = max(last_written, stat.st_mtime)
            self._segments[segment] = set()
            for call_id, kind, data in _lines(path):
                if kind == DONE:
                    found.pop(call_id, None)
                    continue
                found.setdefault(call_id, SpooledCall(call_id)).records.append((kind, data))
                self._segments[segment].add(call_id)
        for segment, calls in self._segments.items():
            calls.intersection_update(found)
            for call_id in calls:
                self._where.setdefault(call_id, set()).add(segment)
        if last_written:
            self.last_written = datetime.fromtimestamp(last_written, UTC)
        return list(found.values())


def _lines(path: Path, only: Container[str] | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(Call-ID, kind, data) of each whole line of `path`; a line cut short by a crash is skipped.
    `only`: the lines of other calls are skipped unparsed (a read-back wants a few calls out of
    thousands, on the SIP loop: parsing every record of a 4 MB segment took tens of milliseconds)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with handle:
        for number, raw in enumerate(handle, 1):
            if only is not None and raw.startswith(_CALL_PREFIX):
                try:
                    # A Call-ID is ASCII (RFC 3261 §25.1); one that is not, or longer than this, is parsed whole.
                    call_id, _ = _DECODER.raw_decode(raw[:2048].decode("ascii"), len(_CALL_PREFIX) - 1)
                except (ValueError, UnicodeDecodeError):
                    call_id = None  # not what `_write` writes: parsed whole below, or reported
                if call_id is not None and call_id not in only:
                    continue
            try:
                record = orjson.loads(raw)
                yield str(record["c"]), str(record["k"]), dict(record.get("d") or {})
            except (ValueError, KeyError, TypeError):
                log.warning("call spool %s line %d is not a whole record (cut short by a crash?); skipped",
                            path.name, number)


def open_spool(settings: JournalConfig, database_url: str) -> tuple[CallSpool, list[SpooledCall]]:
    """The spool `[journal]` configures, opened: it and the calls a previous run left unwritten."""
    directory = Path(settings.spool_dir) if settings.spool_dir else default_spool_dir(database_url)
    spool = CallSpool(directory, segment_bytes=settings.spool_segment_kb * 1024)
    return spool, spool.open()


def default_spool_dir(database_url: str) -> Path:
    """One spool per database, since a replay writes into the database the spool belongs to: beside a
    SQLite file as its sibling (`gateway.db` → `gateway.db-spool`, like SQLite's own -wal and -shm),
    else `./var/call-spool-<host>-<database>`."""
    prefix = "sqlite+aiosqlite:///"
    if database_url.startswith(prefix) and ":memory:" not in database_url:
        database = database_url[len(prefix):].split("?", 1)[0]
        return Path(database + "-spool")
    try:
        url = make_url(database_url)
    except ArgumentError:
        return Path("var") / "call-spool"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{url.host or 'local'}-{url.database or 'default'}")
    return Path("var") / f"call-spool-{name}"


class SpoolCollector(Collector):
    """gateway_call_spool_bytes, _segments, _calls, _spilled and _replayed_total (see `CallSpool`)."""

    def __init__(self, spool: CallSpool, spilled: Any) -> None:
        """`spilled()`: how many calls' writes wait on disk only (the journal's back-pressure)."""
        self._spool = spool
        self._spilled = spilled

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        spool = self._spool
        yield GaugeMetricFamily("gateway_call_spool_bytes", "Bytes of the call journal's spool on disk",
                                value=spool.bytes)
        yield GaugeMetricFamily("gateway_call_spool_segments", "Files of the call journal's spool",
                                value=spool.segments)
        yield GaugeMetricFamily("gateway_call_spool_calls", "Calls in the spool not yet all written to the database",
                                value=spool.calls)
        yield GaugeMetricFamily("gateway_call_spool_spilled",
                                "Calls whose pending writes are held on disk only (beyond the memory cap)",
                                value=self._spilled())
        yield CounterMetricFamily("gateway_call_spool_replayed", "Calls replayed from the spool at start-up",
                                  value=spool.replayed)
