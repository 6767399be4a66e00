"""The C fast path of the parser (gateway/sip/_speedups.c) under AddressSanitizer + UBSan, and leak-free.

Each test compiles its own copy of the C file into a temporary directory (the installed build is left
alone) and runs tests/sip/speedups_fuzz_driver.py in a fresh interpreter, which lets parser.py load and
configure that copy and feeds it the corpus, every truncation, heads cut short and seeded mutations.

- Sanitized: ``-fsanitize=address,undefined``, libasan preloaded (CPython itself is not instrumented,
  hence ``detect_leaks=0``), ``PYTHONMALLOC=malloc`` so that every object, the input bytes included, is
  its own ASan allocation. Any sanitizer report, disagreement with the Python parser or non-zero exit fails.
- Leaks: a plain build, the same inputs in rounds; memory blocks and references to shared objects
  (None, header names, the Via class...) must not grow.
- Planted bugs: copies of the C file with a known over-read or leak prove that each check fails when
  it should; no copy touches the real file.

Skipped only when gcc or libasan is missing (``make test`` installs gcc).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
C_SOURCE = ROOT / "gateway" / "sip" / "_speedups.c"
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1")
PLAIN_FLAGS = ("-O1", "-g")
LEAK_ROUNDS = 10
# sys.getallocatedblocks() moves by a block or two between identical rounds (interpreter noise); a leak
# on any path that two inputs per round take grows it by 2 * LEAK_ROUNDS or more.
BLOCK_NOISE = 8
SANITIZER_MARKS = ("AddressSanitizer", "UndefinedBehaviorSanitizer", "runtime error:", "LeakSanitizer")
# Planted bugs, each a (text in _speedups.c, replacement) pair.
BODY_SIZE = "Py_ssize_t body_size = end - body_start;"
OVERREAD_64 = (BODY_SIZE, "Py_ssize_t body_size = end - body_start + 64;")
OVERREAD_1 = (BODY_SIZE, "Py_ssize_t body_size = end - body_start + 1;")
LEAK_PARAMS_DICT = ("Py_XDECREF(params);", "")  # a new dict per accepted message
LEAK_NAME_REF = ("Py_DECREF(name);", "")  # a reference to a shared header name per declined header


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (make test installs it)")
    return gcc


def _libasan(gcc: str) -> str:
    found = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True)
    path = found.stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        pytest.skip("libasan is not installed with gcc")
    return path


def _compile(source_text: str, out_dir: Path, flags: tuple[str, ...]) -> Path:
    """Build `source_text` as a `_speedups` extension in `out_dir`; fails the test on compiler errors."""
    gcc = _gcc()
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / "_speedups.c"
    source.write_text(source_text)
    build = out_dir / f"_speedups{EXT_SUFFIX}"
    command = [gcc, "-shared", "-fPIC", *flags, f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(build)]
    compiled = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, f"{' '.join(command)}\n{compiled.stderr}"
    return build


def _planted(bug: tuple[str, str]) -> str:
    """The C source with one planted bug; fails loudly when the anchor text has moved."""
    original, replacement = bug
    text = C_SOURCE.read_text()
    assert original in text, f"planted-bug anchor {original!r} is gone from {C_SOURCE.name}: update this test"
    return text.replace(original, replacement)


def _drive(build: Path, mode: str, *extra: str, sanitized: bool) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("LD_PRELOAD", "PYTHONMALLOC")}
    if sanitized:
        env.update(
            LD_PRELOAD=_libasan(_gcc()),
            ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0",
            UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
            PYTHONMALLOC="malloc",  # no pymalloc arenas: a read past the input's allocation is seen
        )
    command = [sys.executable, "-m", "tests.sip.speedups_fuzz_driver", mode, str(build), *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _sanitizer_report(run: subprocess.CompletedProcess[str]) -> str | None:
    if run.returncode != 0 or any(mark in run.stderr for mark in SANITIZER_MARKS):
        return f"exit status {run.returncode}\n{run.stderr[-6000:]}"
    return None


@pytest.fixture(scope="module")
def sanitized_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _libasan(_gcc())
    return _compile(C_SOURCE.read_text(), tmp_path_factory.mktemp("asan"), SANITIZE_FLAGS)


@pytest.fixture(scope="module")
def plain_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile(C_SOURCE.read_text(), tmp_path_factory.mktemp("plain"), PLAIN_FLAGS)


def test_fast_path_has_no_memory_error_or_disagreement_under_asan_and_ubsan(sanitized_build: Path) -> None:
    run = _drive(sanitized_build, "sanitize", sanitized=True)
    report = _sanitizer_report(run)
    assert report is None, report
    counters = json.loads(run.stdout.strip().splitlines()[-1])
    # The run is worth something only if both outcomes were exercised, seeds included.
    assert counters["inputs"] > 20_000 and counters["accepted"] > 1_000 and counters["declined"] > 10_000, counters
    assert counters["seeds_accepted"] >= 15, counters


def test_fast_path_leaks_no_memory_and_no_reference(plain_build: Path) -> None:
    run = _drive(plain_build, "leaks", "--rounds", str(LEAK_ROUNDS), sanitized=False)
    assert run.returncode == 0, run.stderr
    counters = json.loads(run.stdout.strip().splitlines()[-1])
    assert counters["accepted_per_round"] > 1_000, counters
    assert counters["refcount_growth"] == {}, counters
    assert counters["block_growth"] <= BLOCK_NOISE, counters


def test_asan_run_catches_a_planted_over_read(tmp_path: Path) -> None:
    _libasan(_gcc())
    build = _compile(_planted(OVERREAD_64), tmp_path, SANITIZE_FLAGS)
    run = _drive(build, "sanitize", "--seeds-only", sanitized=True)
    assert run.returncode != 0 and "heap-buffer-overflow" in run.stderr, run.stderr[-3000:]


def test_past_the_end_check_catches_a_planted_one_byte_over_read(tmp_path: Path) -> None:
    """ASan cannot see this one (the NUL after a bytes object's data is in its allocation); the driver can."""
    _libasan(_gcc())
    build = _compile(_planted(OVERREAD_1), tmp_path, SANITIZE_FLAGS)
    run = _drive(build, "sanitize", "--seeds-only", sanitized=True)
    assert run.returncode != 0 and "depends on the byte past the end" in run.stderr, run.stderr[-3000:]


@pytest.mark.parametrize(
    ("bug", "symptom"),
    [(LEAK_PARAMS_DICT, "block_growth"), (LEAK_NAME_REF, "refcount_growth")],
    ids=["new-object-leak", "shared-reference-leak"],
)
def test_leak_check_catches_a_planted_leak(tmp_path: Path, bug: tuple[str, str], symptom: str) -> None:
    build = _compile(_planted(bug), tmp_path, PLAIN_FLAGS)
    run = _drive(build, "leaks", "--rounds", str(LEAK_ROUNDS), "--mutations", "500", sanitized=False)
    assert run.returncode == 0, run.stderr
    counters = json.loads(run.stdout.strip().splitlines()[-1])
    if symptom == "block_growth":
        assert counters["block_growth"] > BLOCK_NOISE, counters
    else:
        assert counters["refcount_growth"], counters
