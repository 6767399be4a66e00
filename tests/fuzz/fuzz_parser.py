"""atheris harness: the C fast path and the Python parser agree, or the fast path declines (`make fuzz`).

    python -m tests.fuzz.fuzz_parser WORK_DIR tests/fuzz/corpus/parser -max_total_time=60 \
        -artifact_prefix=tests/fuzz/corpus/parser/

New inputs go to WORK_DIR (the first directory); a crash is written beside the seeds and replayed by
tests/fuzz/test_fuzz_corpus.py in `make test`. Only the Python code is coverage-instrumented: the C
extension is reached through it, and its verdicts are checked against Python's on every input.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["gateway.sip", "tests.fuzz"]):
    from tests.fuzz.checks import check_parser


def main() -> None:
    atheris.Setup(sys.argv, check_parser)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
