"""Every Prometheus collector of the gateway, prefixed ``gateway_``.

Collectors live in their own registry so tests and several gateways in one process never collide
with the default one. SIP message and transaction counts are read from the endpoint's plain
`stats` dict at scrape time: nothing is done per message for metrics on the hot path.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class CallStats:
    """Call counters kept as plain numbers (prometheus-client takes a lock per update, which shows
    at a thousand calls a second); `CallStatsCollector` exposes them at scrape time."""

    __slots__ = ("active", "answered", "failed", "ended", "ended_reasons", "setup_counts", "setup_sum")

    def __init__(self) -> None:
        self.active = 0
        self.answered = 0
        self.failed = 0
        self.ended = 0
        # Why connected calls ended ("bye", "session-expired", ...): a fixed set, so bounded labels.
        self.ended_reasons: dict[str, int] = {}
        self.setup_counts = [0] * (len(SETUP_BUCKETS) + 1)  # the last one is +Inf
        self.setup_sum = 0.0

    def observe_setup(self, seconds: float) -> None:
        self.setup_counts[bisect_left(SETUP_BUCKETS, seconds)] += 1
        self.setup_sum += seconds


class CallStatsCollector(Collector):
    """gateway_calls_active, gateway_calls_total{outcome}, gateway_calls_ended_total{reason},
    gateway_call_setup_seconds."""

    def __init__(self, stats: CallStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        stats = self._stats
        yield GaugeMetricFamily("gateway_calls_active", "Calls in progress (offered, not yet ended)", value=stats.active)
        calls = CounterMetricFamily("gateway_calls", "Calls by outcome", labels=["outcome"])
        for outcome in ("answered", "failed", "ended"):
            calls.add_metric([outcome], getattr(stats, outcome))
        yield calls
        ended = CounterMetricFamily(
            "gateway_calls_ended", "Connected calls ended, by reason (bye, ack-timeout, session-expired, max-duration)",
            labels=["reason"],
        )
        for reason, count in sorted(stats.ended_reasons.items()):
            ended.add_metric([reason], count)
        yield ended
        cumulative, buckets = 0, []
        for bound, count in zip((*SETUP_BUCKETS, float("inf")), stats.setup_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "gateway_call_setup_seconds", "Time from INVITE received to the answer relayed",
            buckets=buckets, sum_value=stats.setup_sum,
        )



_KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "UPDATE", "INFO", "PRACK", "REFER",
     "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH"}
)


class EndpointStatsCollector(Collector):
    """Exposes a `SipEndpoint.stats` dict (and the registrar size) as gateway_sip_* metrics."""

    def __init__(self, stats: Mapping[str, int], registrations: Callable[[], int] = lambda: 0) -> None:
        self._stats = stats
        self._registrations = registrations

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = dict(self._stats)
        requests = CounterMetricFamily(
            "gateway_sip_requests", "SIP requests by direction and method", labels=["direction", "method"]
        )
        responses = CounterMetricFamily(
            "gateway_sip_responses", "SIP responses by direction and status class",
            labels=["direction", "status_class"],
        )
        folded: dict[tuple[str, str], int] = {}
        for key, value in stats.items():
            kind, _, label = key.partition(".")
            direction = "in" if kind.endswith("_received") else "out"
            if kind.startswith("requests_"):
                # Methods are attacker-chosen: fold unknown ones so label cardinality stays bounded.
                method = label if label in _KNOWN_METHODS else "OTHER"
                folded[(direction, method)] = folded.get((direction, method), 0) + value
            elif kind.startswith("responses_"):
                responses.add_metric([direction, label], value)
        for (direction, method), value in sorted(folded.items()):
            requests.add_metric([direction, method], value)
        yield requests
        yield responses
        for name, key, text in (
            ("gateway_sip_transactions", "transactions_created", "SIP transactions created"),
            ("gateway_sip_transaction_timeouts", "transactions_timed_out", "Client transactions without a final response"),
            ("gateway_sip_transport_errors", "transport_errors",
             "Client transactions ended by a transport error (e.g. a refused TCP connection)"),
            ("gateway_sip_retransmissions", "retransmissions", "SIP retransmissions sent"),
            ("gateway_sip_malformed", "malformed", "Messages that were not valid SIP"),
            ("gateway_sip_ack_not_received", "ack_not_received", "2xx answers never acknowledged"),
            ("gateway_sip_messages_too_large", "messages_too_large",
             "TCP messages refused for their size (sip.max_message_bytes); their connection is closed"),
        ):
            yield CounterMetricFamily(name, text, value=stats.get(key, 0))
        yield GaugeMetricFamily(
            "gateway_registrations_active", "Contacts currently bound in the registrar", value=self._registrations()
        )


class TcpCollector(Collector):
    """gateway_tcp_connections_open, gateway_tcp_connections_refused_total{reason},
    gateway_tcp_connections_closed_total{reason}: the TCP transport's `stats` dict (one shared by all
    its listeners), read at scrape time."""

    def __init__(self, stats: Mapping[str, int]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = dict(self._stats)
        yield GaugeMetricFamily("gateway_tcp_connections_open", "SIP TCP connections open (accepted and opened)",
                                value=stats.get("open", 0))
        refused = CounterMetricFamily(
            "gateway_tcp_connections_refused", "New TCP connections closed at once: over the total or per-source cap",
            labels=["reason"],
        )
        for reason in ("total_cap", "source_cap"):
            refused.add_metric([reason], stats.get(f"refused.{reason}", 0))
        yield refused
        closed = CounterMetricFamily(
            "gateway_tcp_connections_closed",
            "TCP connections closed by a limit: idle too long, or one message taking too long to arrive",
            labels=["reason"],
        )
        for reason in ("idle", "slow_message"):
            closed.add_metric([reason], stats.get(f"closed.{reason}", 0))
        yield closed


class ListeningCollector(Collector):
    """gateway_sip_listening: 1 once every SIP socket is bound."""

    def __init__(self, listening: Callable[[], bool]) -> None:
        self._listening = listening

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("gateway_sip_listening", "1 once every SIP socket is bound",
                                value=1 if self._listening() else 0)


class PendingWork(Protocol):
    """What `JournalCollector` reads of the call journal's queue (`gateway.calls.journal.CallJournal`)."""

    @property
    def retries(self) -> int: ...

    @property
    def failures(self) -> int: ...

    def __len__(self) -> int: ...


class JournalCollector(Collector):
    """gateway_call_journal_retries_total, gateway_call_journal_pending, gateway_call_journal_failures_total:
    call-log and CRM writes postponed because the database could not take them (SPEC C4), those still
    to be made, and those skipped by a bug (lost: any is worth an alert)."""

    def __init__(self, work: PendingWork) -> None:
        self._work = work

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield CounterMetricFamily("gateway_call_journal_retries",
                                  "Call-log and CRM writes of calls postponed and tried again (database unavailable)",
                                  value=self._work.retries)
        yield GaugeMetricFamily("gateway_call_journal_pending", "Call-log and CRM writes of calls not yet made",
                                value=len(self._work))
        yield CounterMetricFamily("gateway_call_journal_failures",
                                  "Call-log and CRM writes of calls skipped after an unexpected error (not retried)",
                                  value=self._work.failures)


class TrunkRegistrationLine(Protocol):
    """One trunk's registration as `TrunkRegistrationCollector` reads it."""

    @property
    def trunk(self) -> str: ...

    @property
    def registered(self) -> bool: ...

    @property
    def failures(self) -> int: ...


class TrunkRegistrationCollector(Collector):
    """gateway_trunk_registered{trunk} (1 while registered at the provider) and
    gateway_trunk_registration_failures_total{trunk}, per trunk the gateway registers to."""

    def __init__(self, lines: Callable[[], Iterable[TrunkRegistrationLine]]) -> None:
        self._lines = lines

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        registered = GaugeMetricFamily("gateway_trunk_registered",
                                       "1 while the gateway is registered at the trunk's provider", labels=["trunk"])
        failures = CounterMetricFamily("gateway_trunk_registration_failures",
                                       "Failed registrations at the trunk's provider (refused, no answer, unreachable)",
                                       labels=["trunk"])
        for line in sorted(self._lines(), key=lambda line: line.trunk):
            registered.add_metric([line.trunk], 1 if line.registered else 0)
            failures.add_metric([line.trunk], line.failures)
        yield registered
        yield failures


def gateway_registry(
    endpoint_stats: Mapping[str, int],
    registrations: Callable[[], int],
    calls: CallStats,
    listening: Callable[[], bool],
) -> CollectorRegistry:
    """A registry for one running gateway (several gateways in one test process never collide)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(EndpointStatsCollector(endpoint_stats, registrations))
    registry.register(CallStatsCollector(calls))
    registry.register(ListeningCollector(listening))
    return registry


def render(*registries: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of the shared `REGISTRY` plus `registries`, and its content type.

    Other parts register their own process-wide collectors on `REGISTRY` (prefix ``gateway_``).
    """
    body = b"".join(generate_latest(registry) for registry in (REGISTRY, *registries))
    return body, CONTENT_TYPE_LATEST
