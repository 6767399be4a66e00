"""One employee's call-card events: a bounded replay buffer and the streams reading it live.

The admin API's `GET /card/stream` subscribes here; a client reconnecting with `Last-Event-ID` gets
what it missed from the buffer. A stream too slow to keep up is ended (its queue would otherwise grow
without bound); its client reconnects with its last id and misses nothing still buffered.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Events waiting for one stream before it counts as stuck and is ended.
STREAM_QUEUE = 256


@dataclass(frozen=True, slots=True)
class CardEvent:
    """One card event: `kind` is ringing, answered, transferred or ended; `data` is its JSON body."""

    id: int
    kind: str
    call_id: str
    data: Mapping[str, Any]

    def sse(self) -> str:
        """The event as a Server-Sent Events message (one `data:` line: the JSON has no newline)."""
        return f"id: {self.id}\nevent: {self.kind}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


class Subscription:
    """One open stream: the events it missed (`backlog`), then the live ones from `queue` (None: ended)."""

    __slots__ = ("backlog", "queue")

    def __init__(self, backlog: list[CardEvent]) -> None:
        self.backlog = backlog
        self.queue: asyncio.Queue[CardEvent | None] = asyncio.Queue(STREAM_QUEUE)

    def offer(self, event: CardEvent) -> bool:
        """Queue `event`; False (and the stream told to end) when the reader fell too far behind."""
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.end()
            return False

    def end(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Feed:
    """An employee's recent card events (at most `cap`, oldest dropped first) and their open streams."""

    __slots__ = ("events", "streams")

    def __init__(self, cap: int) -> None:
        self.events: deque[CardEvent] = deque(maxlen=cap)
        self.streams: set[Subscription] = set()

    def publish(self, event: CardEvent) -> None:
        self.events.append(event)
        for stream in list(self.streams):
            if not stream.offer(event):
                self.streams.discard(stream)

    def backlog(self, after: int | None, call_on: Callable[[str], bool]) -> list[CardEvent]:
        """What a stream starts with: after `after` (its Last-Event-ID), every buffered event past it; a new
        stream (None), the events of the calls still on, so a page opened mid-call shows their cards."""
        if after is None:
            return [event for event in self.events if call_on(event.call_id)]
        return [event for event in self.events if event.id > after]

    def forget_call(self, call_id: str) -> None:
        kept = [event for event in self.events if event.call_id != call_id]
        self.events.clear()
        self.events.extend(kept)

    @property
    def idle(self) -> bool:
        return not self.events and not self.streams
