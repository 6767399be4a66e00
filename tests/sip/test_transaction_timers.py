"""RFC 3261 timer values (§17, table 4) and the endpoint's single timer queue."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.timers import TimerQueue, TimerSettings


def test_default_values_follow_rfc3261_table_4() -> None:
    settings = TimerSettings()
    assert (settings.t1, settings.t2, settings.t4) == (0.5, 4.0, 5.0)
    assert settings.transaction_timeout == 32.0  # B, F, H, J, L, M = 64*T1
    assert (settings.timer_d(False), settings.timer_i(False), settings.timer_j(False), settings.timer_k(False)) == (
        32.0, 5.0, 32.0, 5.0,
    )


def test_reliable_transports_zero_the_absorbing_timers() -> None:
    settings = TimerSettings(t1=0.1, t2=1.0, t4=2.0)
    assert (settings.timer_d(True), settings.timer_i(True), settings.timer_j(True), settings.timer_k(True)) == (
        0.0, 0.0, 0.0, 0.0,
    )
    assert settings.transaction_timeout == 6.4 and settings.timer_k(False) == 2.0


def test_timers_fire_in_deadline_order_and_fifo_on_ties() -> None:
    queue = TimerQueue()
    fired: list[tuple[str, float]] = []

    def record(name: str, now: float) -> None:
        fired.append((name, now))

    queue.schedule(3.0, "c", record)
    queue.schedule(1.0, "a", record)
    queue.schedule(2.0, "b1", record)
    queue.schedule(2.0, "b2", record)
    assert queue.next_deadline() == 1.0
    assert queue.run_due(2.0) == 3
    assert fired == [("a", 2.0), ("b1", 2.0), ("b2", 2.0)]
    assert queue.next_deadline() == 3.0 and len(queue) == 1


def test_cancelled_timers_never_fire_and_do_not_hold_the_deadline() -> None:
    queue = TimerQueue()
    fired: list[str] = []
    early = queue.schedule(1.0, "early", lambda name, now: fired.append(name))
    queue.schedule(5.0, "late", lambda name, now: fired.append(name))
    early.cancel()
    assert queue.next_deadline() == 5.0
    assert queue.run_due(10.0) == 1 and fired == ["late"]
    assert queue.next_deadline() is None


def test_a_timer_scheduled_by_a_callback_for_now_fires_in_the_same_run() -> None:
    queue = TimerQueue()
    fired: list[str] = []

    def chain(name: str, now: float) -> None:
        fired.append(name)
        if name == "first":
            queue.schedule(now, "second", chain)

    queue.schedule(1.0, "first", chain)
    queue.run_due(1.0)
    assert fired == ["first", "second"]


def test_mass_cancellation_is_swept_so_the_heap_stays_bounded() -> None:
    queue = TimerQueue()
    for index in range(50_000):
        queue.schedule(100.0 + index, "B", lambda name, now: None).cancel()
    live = queue.schedule(1.0, "live", lambda name, now: None)
    # White-box: the heap itself is what would grow without the sweep.
    assert len(queue._heap) < 10_000
    assert queue.next_deadline() == live.deadline and len(queue) == 1


def test_cancelling_counts_dead_entries_without_scanning_and_twice_is_once() -> None:
    queue = TimerQueue()
    handles = [queue.schedule(10.0 + i, "t", lambda name, now: None) for i in range(10)]
    for handle in handles[:4]:
        handle.cancel()
        handle.cancel()
    assert len(queue) == 6
    assert queue.next_deadline() == 14.0  # the four dead ones surfaced and were dropped
    assert len(queue) == 6 and len(queue._heap) == 6
    assert queue.run_due(100.0) == 6 and len(queue) == 0
    handles[-1].cancel()  # already fired: nothing left to count
    assert len(queue) == 0


def test_a_fired_timer_lets_go_of_its_callback() -> None:
    queue = TimerQueue()
    fired: list[str] = []
    handle = queue.schedule(1.0, "t", lambda name, now: fired.append(name))
    queue.run_due(1.0)
    assert fired == ["t"]
    handle.callback("again", 2.0)  # what a transaction still holding the handle could reach
    assert fired == ["t"]


class _EagerSweep(TimerQueue):
    _SWEEP_MIN = 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["schedule", "schedule", "cancel", "run"]), st.integers(0, 400)),
                min_size=100, max_size=400))
def test_the_sweep_never_changes_which_timers_fire_or_in_what_order(script: list[tuple[str, int]]) -> None:
    """Against a plain model (sorted live timers), with the sweep starting early (white-box: a small
    threshold) so that it runs, entries moving around the heap under the cursor."""
    queue = _EagerSweep()
    fired: list[int] = []
    handles: list[tuple[int, object]] = []
    model: dict[int, float] = {}  # live timer id → deadline
    now = 0.0
    for action, value in script:
        if action == "schedule":
            ident = len(handles)
            deadline = now + value / 10
            handles.append((ident, queue.schedule(deadline, str(ident), lambda name, at: fired.append(int(name)))))
            model[ident] = deadline
        elif action == "cancel" and handles:
            ident, handle = handles[value % len(handles)]
            handle.cancel()  # type: ignore[attr-defined]
            model.pop(ident, None)
        elif action == "run":
            now += value / 20
            expected = sorted((deadline, ident) for ident, deadline in model.items() if deadline <= now)
            fired.clear()
            queue.run_due(now)
            assert fired == [ident for _, ident in expected]
            for _, ident in expected:
                del model[ident]
        assert len(queue) == len(model)
        assert queue.next_deadline() == (min(model.values()) if model else None)


def test_a_large_sweep_is_spread_over_the_schedules_that_follow() -> None:
    """Never the whole heap in one go: each schedule() drops at most a few cancelled entries."""
    queue = TimerQueue()
    handles = [queue.schedule(100.0 + index, "B", lambda name, now: None) for index in range(20_000)]
    for handle in handles[:15_000]:
        handle.cancel()
    before = len(queue._heap)
    queue.schedule(1.0, "one more", lambda name, now: None)
    assert before + 1 - len(queue._heap) <= TimerQueue._SWEEP_STEP
    for index in range(20_000):
        queue.schedule(200.0 + index, "more", lambda name, now: None)
    assert queue._dead[0] * 4 <= len(queue._heap) + TimerQueue._SWEEP_STEP  # swept down to the threshold


def test_removing_an_entry_keeps_the_heap_ordered_whichever_way_the_last_entry_must_move() -> None:
    """White-box: the last entry, moved into the hole, may belong lower (sift down) or, coming from
    another subtree, higher (sift up): deadlines 1, 10, 2, 11, 12, 3, 4 and the 11 removed."""
    for deadlines, hole in (((1, 10, 2, 11, 12, 3, 4), 3), ((1, 2, 3, 4, 5, 6, 7), 1)):
        queue = TimerQueue()
        handles = [queue.schedule(float(deadline), str(deadline), lambda name, now: None) for deadline in deadlines]
        assert [entry[0] for entry in queue._heap] == [float(d) for d in deadlines]  # pushed in heap order
        handles[hole].cancel()
        queue._remove_at(hole)
        heap = queue._heap
        assert all(heap[(i - 1) // 2] < heap[i] for i in range(1, len(heap)))
        assert sorted(entry[0] for entry in heap) == sorted(float(d) for i, d in enumerate(deadlines) if i != hole)
