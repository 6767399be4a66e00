"""RFC 3261 timer values (§17, table 4) and the endpoint's single timer queue."""

from __future__ import annotations

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
