"""The SIP message corpus: ``corpus/*.sip``, one message per file, with its expected verdict.

File format: leading ``# expect: ok|<status>`` and ``# about: ...`` lines, then the message with
LF line ends (turned into CRLF). Markers: ``<AUTO>`` is the body's length, ``<CR>``/``<LF>`` a bare
CR/LF, ``<xHH>`` the byte 0xHH, ``<LONGUSER>`` a 2,100-character user part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path(__file__).parent / "corpus"
_BYTE_MARKER = re.compile(rb"<x([0-9A-Fa-f]{2})>")


@dataclass(frozen=True)
class CorpusCase:
    """One message of the corpus and what our parser must make of it."""

    name: str
    data: bytes
    expect: int | None  # None: parses; otherwise the RemoteProtocolError status hint
    about: str


def _materialise(text: str) -> bytes:
    data = "\r\n".join(text.split("\n")).encode("utf-8")
    data = data.replace(b"<CR>", b"\r").replace(b"<LF>", b"\n").replace(b"<LONGUSER>", b"a" * 2100)
    data = _BYTE_MARKER.sub(lambda match: bytes([int(match.group(1), 16)]), data)
    if b"<AUTO>" in data:
        body = data[data.index(b"\r\n\r\n") + 4 :]
        data = data.replace(b"<AUTO>", str(len(body)).encode())
    return data


def load_case(path: Path) -> CorpusCase:
    """Read one corpus file."""
    lines = path.read_text(encoding="utf-8").split("\n")
    meta: dict[str, str] = {}
    while lines and lines[0].startswith("# "):
        key, _, value = lines.pop(0)[2:].partition(":")
        meta[key.strip()] = value.strip()
    expect = meta.get("expect", "ok")
    return CorpusCase(path.stem, _materialise("\n".join(lines)), None if expect == "ok" else int(expect),
                      meta.get("about", ""))


def load_corpus() -> list[CorpusCase]:
    """Every corpus case, sorted by name."""
    return [load_case(path) for path in sorted(CORPUS_DIR.glob("*.sip"))]
