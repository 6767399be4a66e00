"""Feeds a build of the C fast path (gateway/sip/_speedups.c) hostile bytes; run by a subprocess.

tests/sip/test_parser_speedups_sanitized.py compiles the C file on its own (with AddressSanitizer and
UBSan, or plain for the leak check) and starts this module in a fresh interpreter::

    python -m tests.sip.speedups_fuzz_driver {sanitize|leaks} BUILD.so [--seed N] [--mutations N]

The build is put in place of ``gateway.sip._speedups`` before ``gateway.sip.parser`` is imported, so
parser.py itself loads and configures it, exactly as in production. The inputs are the parser corpus
(tests/sip/data/corpus), this suite's seeds (tests/sip/data/speedups), every truncation of each, each
head cut short and closed by a blank line, and seeded random mutations.

``sanitize``: every input once as a datagram and once as a stream. A message the fast path takes must
equal the Python parser's, and the result must not change when the byte just past the input changes:
a bytes object's NUL terminator lies inside its allocation, so ASan cannot see a one-byte over-read,
this can. Exit status 1 with the input on stderr at the first disagreement.

``leaks``: the same inputs, several rounds; reports how many memory blocks and references to shared
objects (None, True, False, header names, the Via class) each round leaves behind.

Both print one JSON line of counters on stdout.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from gateway.sip.message import Request, Response
from tests.sip.data import CORPUS_DIR, load_case

SEEDS_DIR = Path(__file__).parent / "data" / "speedups"
# What the brief asks the mutations to insert: line ends, NUL, a non-ASCII byte and the separators the
# fast path branches on.
INSERTS = (b"\r", b"\n", b"\x00", b"\x80", b":", b",", b";", b'"', b"\r\n", b" ", b"\t", b"<", b">", b"=")
# Bytes put just past the input: each would change the result if the fast path read that far.
PAST_THE_END = (b"\r", b"\n", b":", b"a", b";")
_BYTES_DATA_OFFSET = bytes.__basicsize__ - 1  # offsetof(PyBytesObject, ob_sval): the NUL is one more


def load_build(path: Path) -> ModuleType:
    """Import gateway.sip.parser with the extension at `path` as its fast path; returns parser."""
    if "gateway.sip.parser" in sys.modules:
        raise RuntimeError("gateway.sip.parser was imported before the build under test was put in place")
    import gateway.sip  # noqa: F401 - the parent package must exist before its submodule is registered

    spec = importlib.util.spec_from_file_location("gateway.sip._speedups", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["gateway.sip._speedups"] = module
    from gateway.sip import parser

    if parser._speedups is not module or not parser.use_speedups(True):
        raise RuntimeError("parser.py did not take the build under test")
    return parser


def seed_messages() -> list[bytes]:
    """The corpus and this suite's seeds, as bytes."""
    paths = sorted(CORPUS_DIR.glob("*.sip")) + sorted(SEEDS_DIR.glob("*.sip"))
    return [load_case(path).data for path in paths]


def variants(seeds: list[bytes], mutations: int, seed: int) -> Iterator[bytes]:
    """The seeds first, then their truncations and heads cut at every length, then random mutants."""
    yield from seeds
    for data in seeds:
        for length in range(len(data)):
            yield data[:length]
        head_end = data.find(b"\r\n\r\n")
        if head_end > 0:
            rest = data[head_end:]
            for length in range(1, head_end):
                yield data[:length] + rest
    rng = random.Random(seed)
    for _ in range(mutations):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            action = rng.random()
            if action < 0.45:
                data[at:at] = rng.choice(INSERTS)
            elif action < 0.75:
                del data[at : at + rng.randint(1, 3)]
            elif at < len(data):
                data[at] ^= 1 << rng.randrange(8)
        yield bytes(data)


def message_view(message: Request | Response) -> tuple[object, ...]:
    """Everything the fast path must agree on: start line (with types), headers, body and the views."""
    first, second = (message.method, message.uri) if isinstance(message, Request) else (message.status, message.reason)
    return (
        type(message).__name__, first, type(first), second, message.headers, message.body,
        message.call_id, message.cseq, message.top_via, message.from_tag, message.to_tag,
    )


def _set_past_the_end(data: bytes, value: int) -> None:
    """Overwrite the NUL terminator of a private bytes object (restored by the caller)."""
    ctypes.c_char.from_address(id(data) + _BYTES_DATA_OFFSET + len(data)).value = bytes([value])


class Disagreement(Exception):
    """The fast path and the reference differ on one input."""


def reference_parse(parser: ModuleType, data: bytes, stream: bool) -> Request | Response | Exception:
    """The pure-Python parser's verdict: the message, or the exception it raised."""
    parser.use_speedups(False)
    try:
        return parser._parse(data, stream=stream)
    except Exception as error:  # noqa: BLE001 - any exception is a verdict the fast path must not override
        return error
    finally:
        parser.use_speedups(True)


def learn_names(parser: ModuleType, inputs: list[bytes]) -> None:
    """The Python parser sees the inputs first: its name cache, read by the fast path, grows as in service."""
    for data in inputs:
        for stream in (False, True):
            reference_parse(parser, data, stream)


def check_one(parser: ModuleType, data: bytes, stream: bool, counters: dict[str, int]) -> None:
    """One input through the fast path (also with the byte past the end changed), then the reference."""
    scan: Callable[[bytes, bool], object] = parser._speedups.scan
    private = bytes(bytearray(data))  # never a shared or cached object: its terminator is overwritten below
    scanned = scan(private, stream)
    counters["scans"] += 1
    if len(private) >= 2:
        for value in PAST_THE_END:
            _set_past_the_end(private, value[0])
            try:
                again = scan(private, stream)
            finally:
                _set_past_the_end(private, 0)
            counters["scans"] += 1
            if again != scanned:
                raise Disagreement(f"result depends on the byte past the end ({value!r}): {data!r}")
    if scanned is None:
        counters["declined"] += 1
        return
    counters["accepted"] += 1
    reference = reference_parse(parser, data, stream)
    if isinstance(reference, Exception):
        raise Disagreement(f"fast path took what the Python parser rejects ({reference!r}): {data!r}")
    got, want = message_view(parser._from_scan(scanned)), message_view(reference)
    if got != want:
        raise Disagreement(f"fast path and Python parser differ on {data!r}:\n C:  {got}\n Py: {want}")


def run_sanitize(parser: ModuleType, inputs: list[bytes], seed_count: int) -> dict[str, int]:
    """Every input once per mode; raises `Disagreement` at the first one."""
    counters = {"inputs": len(inputs), "scans": 0, "accepted": 0, "declined": 0, "seeds_accepted": 0}
    for index, data in enumerate(inputs):
        for stream in (False, True):
            accepted_before = counters["accepted"]
            check_one(parser, data, stream, counters)
            if index < seed_count and not stream and counters["accepted"] > accepted_before:
                counters["seeds_accepted"] += 1
    return counters


def _shared_objects(parser: ModuleType) -> dict[str, object]:
    """Objects every scan may take a reference to without creating them: a leak shows as refcount growth."""
    shared: dict[str, object] = {"None": None, "True": True, "False": False, "Via": parser.Via,
                                 "branch": sys.intern("branch"), "rport": sys.intern("rport")}
    for raw, canonical in parser._NAME_CACHE.items():
        shared[f"name {canonical}"] = canonical
        shared[f"raw name {raw}"] = raw
    return shared


def run_leaks(parser: ModuleType, inputs: list[bytes], rounds: int) -> dict[str, object]:
    """Blocks and shared references left behind by `rounds` passes over the inputs after two warm ones."""
    scan = parser._speedups.scan
    private = [bytes(bytearray(data)) for data in inputs]

    def one_round() -> int:
        accepted = 0
        for data in private:
            accepted += scan(data, False) is not None
            accepted += scan(data, True) is not None
        return accepted

    one_round()
    accepted = one_round()
    labels, objects = zip(*_shared_objects(parser).items(), strict=True)
    gc.collect()
    # Counts in a list, not a dict keyed by label: a label can be the very str being counted.
    refs_before = [sys.getrefcount(obj) for obj in objects]
    blocks_before = sys.getallocatedblocks()
    for _ in range(rounds):
        one_round()
    gc.collect()
    blocks_after = sys.getallocatedblocks()
    refs_after = [sys.getrefcount(obj) for obj in objects]
    grown = {label: after - before for label, before, after in zip(labels, refs_before, refs_after, strict=True)
             if after != before}
    return {"inputs": len(inputs), "rounds": rounds, "scans_per_round": 2 * len(inputs),
            "accepted_per_round": accepted, "block_growth": blocks_after - blocks_before, "refcount_growth": grown}


def main(argv: list[str] | None = None) -> int:
    """Command line entry; see the module docstring."""
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("mode", choices=("sanitize", "leaks"))
    arguments.add_argument("build", type=Path)
    arguments.add_argument("--seed", type=int, default=20261123)
    arguments.add_argument("--mutations", type=int, default=3000)
    arguments.add_argument("--rounds", type=int, default=3)
    arguments.add_argument("--seeds-only", action="store_true", help="no truncations (quick runs)")
    options = arguments.parse_args(argv)
    parser = load_build(options.build)
    seeds = seed_messages()
    inputs = seeds if options.seeds_only else list(variants(seeds, options.mutations, options.seed))
    # Truncations hold no header name the whole seed lacks: the seeds and mutants teach every name.
    learn_names(parser, seeds if options.seeds_only else seeds + inputs[len(inputs) - options.mutations :])
    if options.mode == "leaks":
        print(json.dumps(run_leaks(parser, inputs, options.rounds)))
        return 0
    try:
        counters = run_sanitize(parser, inputs, len(seeds))
    except Disagreement as error:
        print(f"DISAGREEMENT: {error}", file=sys.stderr)
        return 1
    counters["seeds"] = len(seeds)
    print(json.dumps(counters))
    return 0


if __name__ == "__main__":
    sys.exit(main())
