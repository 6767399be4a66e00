"""SPEC R3: a queue group's no-answer chain, and the loop check that refuses a chain at configuration."""

from __future__ import annotations

from collections.abc import Mapping


def find_chain_loop(start: int, next_group: Mapping[int, int | None]) -> tuple[int, ...] | None:
    """The groups of the loop reached by following no-answer chains from `start`, or None.

    `next_group` maps each group id to the group its no-answer chain passes the call to (None: the
    chain ends at an employee, an outside number or a hang-up). A loop is returned as the path from its
    first repeated group back to itself, e.g. ``(2, 3, 2)``, so an error message can show it.
    """
    path: list[int] = []
    seen: dict[int, int] = {}
    current: int | None = start
    while current is not None:
        if current in seen:
            return (*path[seen[current]:], current)
        seen[current] = len(path)
        path.append(current)
        current = next_group.get(current)
    return None
