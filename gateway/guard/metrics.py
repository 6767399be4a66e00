"""Prometheus view of a `SourceGuard`'s counters (read at scrape time, nothing per request)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.guard.policy import RULES, SourceGuard


class GuardCollector(Collector):
    """gateway_security_auth_failures_total, gateway_security_blocks_total{rule},
    gateway_security_blocked{rule}, gateway_security_requests_dropped_total{rule},
    gateway_security_requests_refused_total{rule}."""

    def __init__(self, guard: SourceGuard, clock: Callable[[], float]) -> None:
        self._guard = guard
        self._clock = clock

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        guard = self._guard
        yield CounterMetricFamily("gateway_security_auth_failures", "Failed digest attempts (wrong credentials)",
                                  value=guard.failed_attempts)
        active = dict.fromkeys(RULES, 0)
        for block in guard.blocks(self._clock()):
            active[block.rule] += 1
        for name, text, values, kind in (
            ("gateway_security_blocks", "Addresses blocked (bans after failed digest attempts, rate, scanner)",
             guard.blocks_made, CounterMetricFamily),
            ("gateway_security_blocked", "Addresses blocked now", active, GaugeMetricFamily),
            ("gateway_security_requests_dropped", "Requests from blocked addresses dropped unanswered",
             guard.dropped, CounterMetricFamily),
            ("gateway_security_requests_refused", "Requests from banned addresses answered 403",
             guard.refused, CounterMetricFamily),
        ):
            family = kind(name, text, labels=["rule"])
            for rule in RULES:
                family.add_metric([rule], values[rule])
            yield family
