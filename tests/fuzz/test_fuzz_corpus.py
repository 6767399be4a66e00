"""The fuzz corpus replayed without atheris (issue 14 part 7): the seeds and every crash `make fuzz` found.

tests/fuzz/corpus/parser: one message each, checked by `check_parser` (C fast path and Python parser
agree, or the fast path declines; only RemoteProtocolError escapes). tests/fuzz/corpus/stream: a stream
each, checked by `check_stream` (any chunking frames the same messages as one feed). A `crash-*` file is
a bug the fuzzer found and that was fixed; it stays here so the bug cannot come back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.checks import check_parser, check_stream

CORPUS = Path(__file__).parent / "corpus"
PARSER_CASES = sorted((CORPUS / "parser").iterdir())
STREAM_CASES = sorted((CORPUS / "stream").iterdir())


def test_corpus_holds_seeds_for_both_harnesses() -> None:
    assert len(PARSER_CASES) >= 20 and len(STREAM_CASES) >= 10


@pytest.mark.parametrize("path", PARSER_CASES, ids=lambda path: path.name)
def test_parser_corpus_case(path: Path) -> None:
    check_parser(path.read_bytes())


@pytest.mark.parametrize("path", STREAM_CASES, ids=lambda path: path.name)
def test_stream_corpus_case(path: Path) -> None:
    check_stream(path.read_bytes())
