"""RFC 3261 timer values (§17, table 4) and the one timer structure an endpoint owns.

Every transaction of an endpoint schedules into a single `TimerQueue`: a binary heap with lazy
cancellation, so the transport adapter needs exactly one loop timer (`next_deadline()`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class TimerSettings:
    """T1, T2, T4 of RFC 3261 §17.1.1.1 and the timers derived from them (table 4, RFC 6026)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    # §17.1.1.2 asks for "at least 32 seconds"; a field so tests and labs can shorten it.
    timer_d_unreliable: float = 32.0

    @property
    def transaction_timeout(self) -> float:
        """64*T1: timers B, F, H, J (unreliable), L and M, and the §13.3.1.4 2xx give-up time."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        # §17.1.1.2: zero for reliable transports, the response-retransmission window otherwise.
        return 0.0 if reliable else self.timer_d_unreliable

    def timer_i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        return 0.0 if reliable else self.transaction_timeout

    def timer_k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4


DEFAULT_TIMERS = TimerSettings()

TimerCallback = Callable[[str, float], None]


def _never(name: str, now: float) -> None:
    return None


class TimerHandle:
    """One scheduled timer; `cancel()` marks it dead and the queue skips it later."""

    __slots__ = ("deadline", "name", "callback", "cancelled", "_dead_in_heap")

    def __init__(self, deadline: float, name: str, callback: TimerCallback, dead_in_heap: list[int]) -> None:
        self.deadline = deadline
        self.name = name
        self.callback = callback
        self.cancelled = False
        # The queue's count of cancelled entries still in its heap (shared, not the queue itself:
        # a handle must not point back at the queue that holds it).
        self._dead_in_heap: list[int] | None = dead_in_heap

    def cancel(self) -> None:
        """Never fire; the entry stays in the heap until it surfaces or a sweep drops it."""
        if self.cancelled:
            return
        self.cancelled = True
        # Lazy cancellation keeps the entry up to 64*T1 (Timer C: minutes): drop the reference to
        # the transaction now so it (and its messages) can be freed at once.
        self.callback = _never
        if self._dead_in_heap is not None:
            self._dead_in_heap[0] += 1

    def __repr__(self) -> str:
        return f"<Timer {self.name} at {self.deadline:.3f}{' cancelled' if self.cancelled else ''}>"


class TimerQueue:
    """Deadline-ordered timers of one endpoint (heap, lazy cancellation)."""

    __slots__ = ("_heap", "_sequence", "_dead", "_cursor")

    # Cancelled entries are swept out a few at a time, once they are numerous and a good share of the
    # heap, so a flood of short-lived transactions (each cancelling a 32 s Timer B) cannot grow the heap
    # unbounded. A few per schedule(), never all at once: rebuilding a heap of 200k entries in one go
    # held the loop 20-60 ms at 1000 calls/s. Counting them as they are cancelled makes the check free.
    _SWEEP_MIN = 4096
    _SWEEP_STEP = 8  # entries looked at per schedule() while sweeping

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._sequence = 0
        self._dead = [0]
        self._cursor = 0  # where the sweep goes on

    def __len__(self) -> int:
        return len(self._heap) - self._dead[0]

    def schedule(self, deadline: float, name: str, callback: TimerCallback) -> TimerHandle:
        """Call `callback(name, now)` once `now >= deadline` is handled."""
        handle = TimerHandle(deadline, name, callback, self._dead)
        self._sequence += 1
        heap = self._heap
        heapq.heappush(heap, (deadline, self._sequence, handle))
        dead = self._dead[0]
        if dead > self._SWEEP_MIN and dead * 4 > len(heap):
            self._sweep_some()
        return handle

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None when nothing is scheduled."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            self._popped(heapq.heappop(heap)[2])
        return heap[0][0] if heap else None

    def run_due(self, now: float) -> int:
        """Fire every live timer whose deadline is <= now, earliest first; returns how many fired.

        Timers scheduled by a callback with a deadline <= now fire in the same call.
        """
        heap = self._heap
        fired = 0
        while heap and heap[0][0] <= now:
            handle = heapq.heappop(heap)[2]
            if handle.cancelled:
                self._popped(handle)
                continue
            handle._dead_in_heap = None
            handle.cancelled = True
            fired += 1
            # A fired handle no longer holds its callback: a transaction keeping the handle would
            # otherwise be in a reference cycle through its own bound method.
            callback, handle.callback = handle.callback, _never
            callback(handle.name, now)
        return fired

    def _popped(self, dead: TimerHandle) -> None:
        dead._dead_in_heap = None
        self._dead[0] -= 1

    def _sweep_some(self) -> None:
        """Look at the next `_SWEEP_STEP` entries (a cursor going round the heap) and drop the cancelled."""
        heap = self._heap
        position = self._cursor
        for _ in range(self._SWEEP_STEP):
            if position >= len(heap):
                position = 0
                if not heap:
                    break
            entry = heap[position]
            if entry[2].cancelled:
                self._remove_at(position)  # another entry now sits at `position`: looked at next
                self._popped(entry[2])
            else:
                position += 1
        self._cursor = position

    def _remove_at(self, position: int) -> None:
        """Remove the entry at `position`: the last entry takes its place and moves to where it belongs."""
        heap = self._heap
        last = heap.pop()
        if position == len(heap):
            return
        heap[position] = last
        _sift_down(heap, position)
        _sift_up(heap, position)


_Entry = tuple[float, int, TimerHandle]


def _sift_down(heap: list[_Entry], position: int) -> None:
    """Move heap[position] towards the leaves until no child is earlier."""
    size = len(heap)
    item = heap[position]
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        right = child + 1
        if right < size and heap[right] < heap[child]:
            child = right
        if heap[child] < item:
            heap[position] = heap[child]
            position = child
        else:
            break
    heap[position] = item


def _sift_up(heap: list[_Entry], position: int) -> None:
    """Move heap[position] towards the root until its parent is earlier."""
    item = heap[position]
    while position > 0:
        parent = (position - 1) >> 1
        if item < heap[parent]:
            heap[position] = heap[parent]
            position = parent
        else:
            break
    heap[position] = item
