"""A Server-Sent Events reader over a real HTTP client (httpx), in a thread of its own, for live tests.

    with SseReader(url, token) as stream:     # returns once the stream answered and sent its first line
        ...place calls...
        events = stream.wait_for(lambda evs: ..., timeout=10)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    id: int | None
    kind: str
    data: dict[str, Any]


class SseReader:
    """Reads `GET url` with a bearer token and parses its events; `status` is the HTTP answer's."""

    def __init__(self, url: str, token: str, *, last_event_id: int | None = None) -> None:
        headers = {"authorization": f"Bearer {token}", "accept": "text/event-stream"}
        if last_event_id is not None:
            headers["last-event-id"] = str(last_event_id)
        self.url, self.headers = url, headers
        self.events: list[SseEvent] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self.body = b""
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SseReader:
        self._thread.start()
        assert self._started.wait(10), f"no answer from {self.url}"
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._client.close()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as response:
                self._response, self.status = response, response.status_code
                if response.status_code != 200:
                    self.body = response.read()
                    self._started.set()
                    return
                self._read(response)
        except (httpx.HTTPError, RuntimeError, OSError):
            pass  # closed by the test (or the gateway stopped)
        finally:
            self._started.set()

    def _read(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                with self._lock:
                    self.comments.append(line[1:].strip())
                self._started.set()
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
                continue
            if "data" in fields:
                event = SseEvent(int(fields["id"]) if "id" in fields else None, fields.get("event", "message"),
                                 json.loads(fields["data"]))
                with self._lock:
                    self.events.append(event)
            fields = {}

    def of_call(self, call_id: str) -> list[SseEvent]:
        with self._lock:
            return [event for event in self.events if event.data.get("call_id") == call_id]

    def of_kind(self, kind: str) -> list[SseEvent]:
        with self._lock:
            return [event for event in self.events if event.kind == kind]

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                with self._lock:
                    raise AssertionError(f"not within {timeout} s: {what}; events: {self.events}")
            time.sleep(0.05)
