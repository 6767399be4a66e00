"""Per-source protection of the SIP port: failed-digest bans, rate limits, scanner user agents.

`policy.SourceGuard` decides (sans-IO); `wiring.GuardWiring` feeds it from the endpoint, the digest
gates and the runtime; `metrics.GuardCollector` exposes its counters.
"""
