"""The call-control modules stand on one another in one direction: `call` owns a `Hunt` and relays
through `DialogRelay`; none of those (nor `call_context`, below them all) imports `call` back, not
even for type checking, so the hunt can be reused by transfers without the call."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway.b2bua

PACKAGE = Path(gateway.b2bua.__file__).parent
ABOVE = {"call_context": {"call", "hunt", "dialog_relay", "controller"},
         "hunt": {"call", "dialog_relay", "controller"},
         "dialog_relay": {"call", "hunt", "controller"}}


def _imported(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("module", sorted(ABOVE))
def test_module_imports_nothing_that_stands_on_it(module: str) -> None:
    imported = _imported(module)
    assert not {f"gateway.b2bua.{above}" for above in ABOVE[module]} & imported
