"""The source guard, sans-IO: (source address, what happened, now) in, a decision with its rule out.

Three rules, each keyed by the sender's address only (never by user, so an unknown extension and a
real one meet the same guard):

- G1 ``auth-failures``: `auth_failures` failed digest attempts within `auth_window_seconds` ban the
  address for `ban_seconds` (dropped, or answered 403). Other addresses are not concerned: the
  user's own phone, elsewhere, keeps registering.
- G2 ``rate``: per address and method (INVITE, REGISTER, OPTIONS), a token bucket refilled at the
  configured rate and holding `rate_burst` requests, in the spirit of Kamailio's pike; an address that
  empties one is ignored for `block_seconds` (dropped: answering a flood would amplify it).
- G3 ``scanner-agent``: a User-Agent naming a known scanner ignores its address for `block_seconds`.

Trusted addresses (`exempt`: the trunks) are never limited. What is remembered per address is bounded
(`max_sources`, oldest forgotten first), so spoofed floods cannot grow memory.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gateway.guard.settings import GuardSettings

AUTH_FAILURES, RATE, SCANNER_AGENT = "auth-failures", "rate", "scanner-agent"
RULES = (AUTH_FAILURES, RATE, SCANNER_AGENT)
ADMIT, DROP, REFUSE = "admit", "drop", "refuse"
V = TypeVar("V")
#: A method's bucket: tokens left and when they were counted.
Bucket = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Block:
    """An address ignored (or refused) until `until` (the guard's clock) because of `rule`."""

    address: str
    rule: str
    since: float
    until: float


@dataclass(frozen=True, slots=True)
class Screening:
    """What to do with one request: admit it, drop it unanswered, or refuse it with `status`."""

    action: str
    rule: str = ""
    status: int = 0
    #: The block this very request earned (None when it met an older one, or none).
    new_block: Block | None = None


ADMITTED = Screening(ADMIT)


def _nobody_exempt(host: str) -> bool:
    return False


def _keep(table: OrderedDict[str, V], key: str, value: V, capacity: int) -> None:
    """Store `value` as the most recently touched; past `capacity` the least recently touched goes."""
    table[key] = value
    table.move_to_end(key)
    if len(table) > capacity:
        table.popitem(last=False)


class SourceGuard:
    """Counts, limits and bans sending addresses; every decision is made here, nothing is sent."""

    def __init__(self, settings: GuardSettings, exempt: Callable[[str], bool] = _nobody_exempt,
                 *, max_sources: int = 100_000) -> None:
        self.settings = settings
        self.exempt = exempt
        self._rates = settings.rates()
        self._agents = settings.scanner_agents if settings.drop_scanner_agents else ()
        self._blocks: dict[str, Block] = {}
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._buckets: OrderedDict[str, dict[str, Bucket]] = OrderedDict()
        self.max_sources = max_sources
        # Plain counters (read by `gateway.guard.metrics` at scrape time).
        self.failed_attempts = 0
        self.blocks_made = dict.fromkeys(RULES, 0)
        self.dropped = dict.fromkeys(RULES, 0)
        self.refused = dict.fromkeys(RULES, 0)

    # -- decisions ----------------------------------------------------------------------------
    def ignores(self, host: str, now: float) -> bool:
        """True when bytes from `host` are to be dropped unparsed (a block that is not answered)."""
        block = self._blocks.get(host)
        if block is None or not self._active(block, now) or self._answers(block):
            return False
        self.dropped[block.rule] += 1
        return True

    def screen(self, method: str, host: str, user_agent: str | None, now: float) -> Screening:
        """The decision on one new request from `host`."""
        block = self._blocks.get(host)
        if block is not None and self._active(block, now):
            return self._blocked(block)
        if self.exempt(host):
            return ADMITTED
        if user_agent is not None and self._agents:
            agent = user_agent.lower()
            if any(fragment in agent for fragment in self._agents):
                return self._blocked(self._block(host, SCANNER_AGENT, now, self.settings.block_seconds), fresh=True)
        rate = self._rates.get(method)
        if rate is not None and not self._take_token(host, method, rate, now):
            return self._blocked(self._block(host, RATE, now, self.settings.block_seconds), fresh=True)
        return ADMITTED

    def auth_failed(self, host: str, now: float) -> Block | None:
        """One failed digest attempt from `host`; the ban it earns, if this one completes a series."""
        if self.exempt(host):
            return None
        self.failed_attempts += 1
        window = self.settings.auth_window_seconds
        times = self._failures.get(host)
        if times is None:
            times = deque(maxlen=self.settings.auth_failures)
        times.append(now)
        _keep(self._failures, host, times, self.max_sources)
        while times and now - times[0] > window:
            times.popleft()
        if len(times) < self.settings.auth_failures:
            return None
        del self._failures[host]
        return self._block(host, AUTH_FAILURES, now, self.settings.ban_seconds)

    # -- the ban list (admin API) ----------------------------------------------------------------
    def blocks(self, now: float) -> list[Block]:
        """The addresses blocked now, soonest released first."""
        self._forget_expired(now)
        return sorted(self._blocks.values(), key=lambda block: (block.until, block.address))

    def unblock(self, host: str, now: float) -> Block | None:
        """Lift the block on `host` (and forget its failures); the block lifted, None if there was none."""
        block = self._blocks.pop(host, None)
        self._failures.pop(host, None)
        self._buckets.pop(host, None)
        return block if block is not None and self._active(block, now) else None

    # -- mechanics -----------------------------------------------------------------------------
    def _answers(self, block: Block) -> bool:
        return block.rule == AUTH_FAILURES and self.settings.ban_action == "403"

    def _blocked(self, block: Block, *, fresh: bool = False) -> Screening:
        new_block = block if fresh else None
        if self._answers(block):
            self.refused[block.rule] += 1
            return Screening(REFUSE, block.rule, 403, new_block)
        self.dropped[block.rule] += 1
        return Screening(DROP, block.rule, new_block=new_block)

    @staticmethod
    def _active(block: Block, now: float) -> bool:
        return now < block.until

    def _block(self, host: str, rule: str, now: float, seconds: float) -> Block:
        block = Block(host, rule, now, now + seconds)
        if host not in self._blocks and len(self._blocks) >= self.max_sources:
            self._forget_expired(now)
            if len(self._blocks) >= self.max_sources:
                del self._blocks[next(iter(self._blocks))]
        self._blocks[host] = block
        self.blocks_made[rule] += 1
        return block

    def _forget_expired(self, now: float) -> None:
        for host in [host for host, block in self._blocks.items() if not self._active(block, now)]:
            del self._blocks[host]

    def _take_token(self, host: str, method: str, rate: float, now: float) -> bool:
        """Token bucket per (address, method): True when a token was there to take."""
        buckets = self._buckets.get(host)
        if buckets is None:
            buckets = {}
        capacity = float(self.settings.rate_burst)
        tokens, last = buckets.get(method, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        allowed = tokens >= 1.0
        buckets[method] = (tokens - 1.0 if allowed else tokens, now)
        _keep(self._buckets, host, buckets, self.max_sources)
        return allowed
