"""How other parts (CRM linking, metrics) hear about calls without touching SIP.

Observers are called synchronously on the call path: they must return at once and never block
(queue work, e.g. into the CRM outbox, rather than doing it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from gateway import metrics
from gateway.b2bua.events import (
    CallAnswered,
    CallEnded,
    CallFailed,
    CallOffered,
    CallStarted,
    CallTransferred,
    LegOffered,
)

log = logging.getLogger(__name__)


class CallObserver(Protocol):
    """Told about every call: started (routing), then offered with each leg offered, then answered and
    ended, or failed. A call rejected by routing or cancelled during it is started then failed.
    Between its answer and its end, a call may be transferred (`call_transferred`, optional: an
    observer without it is not told)."""

    def call_started(self, event: CallStarted) -> None: ...

    def leg_offered(self, event: LegOffered) -> None: ...

    def call_offered(self, event: CallOffered) -> None: ...

    def call_answered(self, event: CallAnswered) -> None: ...

    def call_failed(self, event: CallFailed) -> None: ...

    def call_ended(self, event: CallEnded) -> None: ...

    def call_transferred(self, event: CallTransferred) -> None: ...


class ObserverSet:
    """Fans one notification out to many observers; one failing observer never breaks the call."""

    __slots__ = ("_observers",)

    def __init__(self, observers: Iterable[CallObserver] = ()) -> None:
        self._observers: list[CallObserver] = list(observers)

    def add(self, observer: CallObserver) -> None:
        self._observers.append(observer)

    def call_started(self, event: CallStarted) -> None:
        for observer in self._observers:
            self._safely(observer.call_started, event)

    def leg_offered(self, event: LegOffered) -> None:
        for observer in self._observers:
            self._safely(observer.leg_offered, event)

    def call_offered(self, event: CallOffered) -> None:
        for observer in self._observers:
            self._safely(observer.call_offered, event)

    def call_answered(self, event: CallAnswered) -> None:
        for observer in self._observers:
            self._safely(observer.call_answered, event)

    def call_failed(self, event: CallFailed) -> None:
        for observer in self._observers:
            self._safely(observer.call_failed, event)

    def call_ended(self, event: CallEnded) -> None:
        for observer in self._observers:
            self._safely(observer.call_ended, event)

    def call_transferred(self, event: CallTransferred) -> None:
        for observer in self._observers:
            method = getattr(observer, "call_transferred", None)  # optional (see CallObserver)
            if method is not None:
                self._safely(method, event)

    @staticmethod
    def _safely(method: object, event: object) -> None:
        try:
            method(event)  # type: ignore[operator]
        except Exception:
            log.exception("call observer %r failed on %s", method, type(event).__name__)


class MetricsObserver:
    """Keeps the call counters and the setup-time histogram behind `gateway_calls_*` metrics."""

    __slots__ = ("stats",)

    def __init__(self, stats: metrics.CallStats) -> None:
        self.stats = stats

    def call_started(self, event: CallStarted) -> None:
        self.stats.active += 1

    def leg_offered(self, event: LegOffered) -> None:
        pass

    def call_offered(self, event: CallOffered) -> None:
        pass

    def call_answered(self, event: CallAnswered) -> None:
        self.stats.answered += 1
        self.stats.observe_setup(event.setup_seconds)

    def call_failed(self, event: CallFailed) -> None:
        self.stats.failed += 1
        self.stats.active -= 1

    def call_ended(self, event: CallEnded) -> None:
        self.stats.ended += 1
        self.stats.active -= 1
        reasons = self.stats.ended_reasons
        reasons[event.reason] = reasons.get(event.reason, 0) + 1

    def call_transferred(self, event: CallTransferred) -> None:
        pass
