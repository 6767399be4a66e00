"""atheris harness: any chunking of a byte stream frames the same messages as one feed (`make fuzz`).

    python -m tests.fuzz.fuzz_stream WORK_DIR tests/fuzz/corpus/stream -max_total_time=60 \
        -artifact_prefix=tests/fuzz/corpus/stream/

New inputs go to WORK_DIR (the first directory); a crash is written beside the seeds and replayed by
tests/fuzz/test_fuzz_corpus.py in `make test`. The first two bytes of an input pick the limits and the chunk sizes
(`tests.fuzz.checks.split_stream_input`).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["gateway.sip", "tests.fuzz"]):
    from tests.fuzz.checks import check_stream


def main() -> None:
    atheris.Setup(sys.argv, check_stream)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
