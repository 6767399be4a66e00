"""ARCHITECTURE.md: gateway.sip imports neither asyncio, socket, time nor anything of the project."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.sip

FORBIDDEN = {"asyncio", "socket", "time", "selectors", "threading", "trio", "uvloop"}
SIP_DIR = Path(gateway.sip.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_sip_core_is_sans_io() -> None:
    offenders = {}
    for path in sorted(SIP_DIR.glob("*.py")):
        for module in _imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN or (top == "gateway" and not module.startswith("gateway.sip")):
                offenders.setdefault(path.name, []).append(module)
    assert offenders == {}
