"""A thin IMAP adapter over aioimaplib: connect, log in, select, search and fetch by UID, IDLE.

No sync decisions here (see :mod:`mail_bridge.sync`). Every server refusal becomes an :class:`ImapError`
whose message says what failed; a refused login is a :class:`LoginRefused`. The secret is never part of
a message or a log line.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import aioimaplib

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_FETCH_UID = re.compile(rb"\bUID (\d+)\b")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ImapError(Exception):
    """The IMAP server refused a command or could not be reached; the message says which."""


class LoginRefused(ImapError):
    """The server refused the login (wrong login or secret, account disabled)."""


@dataclass(frozen=True)
class FolderStatus:
    """A selected folder's UIDVALIDITY and predicted next UID (RFC 3501 2.3.1.1)."""

    uidvalidity: int
    uidnext: int | None


@dataclass(frozen=True)
class ImapAccount:
    """Where and how to log in; ``tls`` is "tls" (implicit, port 993) or "none" (loopback/test servers)."""

    host: str
    port: int
    tls: str
    login: str
    secret: str

    def __repr__(self) -> str:
        return f"ImapAccount({self.login}@{self.host}:{self.port}, tls={self.tls})"


def imap_date(day: date) -> str:
    """RFC 3501 date (``04-Dec-2026``) without the locale's month names."""
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"


def _text(response: aioimaplib.Response) -> str:
    return " ".join(line.decode("utf-8", "replace") for line in response.lines if isinstance(line, bytes))[:300]


class ImapSession:
    """One logged-in IMAP connection."""

    def __init__(self, client: aioimaplib.IMAP4, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    @classmethod
    async def open(cls, account: ImapAccount, command_timeout: float) -> ImapSession:
        """Connect and log in; :class:`LoginRefused` when the server refuses the credentials."""
        if account.tls == "tls":
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                host=account.host, port=account.port, timeout=command_timeout, ssl_context=ssl.create_default_context()
            )
        elif account.tls == "none":
            client = aioimaplib.IMAP4(host=account.host, port=account.port, timeout=command_timeout)
        else:
            raise ImapError(f"IMAP TLS mode {account.tls!r} is not supported: use 'tls' (port 993) or 'none'")
        try:
            await asyncio.wait_for(client.wait_hello_from_server(), command_timeout)
        except (OSError, TimeoutError) as exc:
            raise ImapError(f"cannot reach {account.host}:{account.port}: {exc or type(exc).__name__}") from exc
        response = await client.login(account.login, account.secret)
        if response.result != "OK":
            raise LoginRefused(f"login refused for {account.login}: {_text(response)}")
        return cls(client, command_timeout)

    async def select(self, folder: str) -> FolderStatus:
        """Select a folder (read-write, as IDLE needs); its UIDVALIDITY and UIDNEXT."""
        response = await self._client.select(_quoted(folder))
        if response.result != "OK":
            raise ImapError(f"cannot select folder {folder!r}: {_text(response)}")
        joined = b" ".join(line for line in response.lines if isinstance(line, bytes))
        validity = _UIDVALIDITY.search(joined)
        if validity is None:
            raise ImapError(f"folder {folder!r}: the server sent no UIDVALIDITY")
        following = _UIDNEXT.search(joined)
        return FolderStatus(int(validity.group(1)), int(following.group(1)) if following else None)

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than ``last_uid`` in the selected folder, ascending."""
        response = await self._client.uid_search("UID", f"{last_uid + 1}:*")
        # "n:*" always matches the highest UID, even when it is below n (RFC 3501 6.4.8): filter.
        return [uid for uid in self._search_result(response, "UID search") if uid > last_uid]

    async def uids_since(self, day: date) -> list[int]:
        """UIDs of the messages received on or after ``day`` (the first sync's window)."""
        return self._search_result(await self._client.uid_search("SINCE", imap_date(day)), "SINCE search")

    def _search_result(self, response: aioimaplib.Response, what: str) -> list[int]:
        if response.result != "OK":
            raise ImapError(f"{what} refused: {_text(response)}")
        numbers = response.lines[0].split() if response.lines and isinstance(response.lines[0], bytes) else []
        return sorted(int(n) for n in numbers if n.isdigit())

    async def fetch(self, uids: list[int]) -> AsyncIterator[tuple[int, bytes]]:
        """(UID, raw message) for each of ``uids`` still in the folder, without setting \\Seen."""
        if not uids:
            return
        response = await self._client.uid("fetch", ",".join(map(str, uids)), "(UID BODY.PEEK[])")
        if response.result != "OK":
            raise ImapError(f"fetch refused: {_text(response)}")
        uid: int | None = None
        for line in response.lines:
            if isinstance(line, bytearray):
                if uid is not None:
                    yield uid, bytes(line)
                uid = None
            elif b"FETCH" in line:
                found = _FETCH_UID.search(line)
                uid = int(found.group(1)) if found else None

    @property
    def can_idle(self) -> bool:
        """True when the server announced IDLE (RFC 2177)."""
        return bool(self._client.has_capability("IDLE"))

    async def idle(self, seconds: float, stop: asyncio.Event) -> bool:
        """IDLE on the selected folder until the server pushes news, ``seconds`` pass or ``stop`` is set.

        True when the server pushed something (new mail, expunge)."""
        done = await self._client.idle_start(timeout=seconds + self._timeout)
        push = asyncio.ensure_future(self._client.wait_server_push(timeout=seconds))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            finished, _ = await asyncio.wait({push, stopped}, return_when=asyncio.FIRST_COMPLETED)
            pushed = push in finished and not push.cancelled() and push.exception() is None
            pushed = pushed and any(b"EXISTS" in line for line in push.result().lines if isinstance(line, bytes))
        finally:
            for task in (push, stopped):
                task.cancel()
            if self._client.has_pending_idle():
                self._client.idle_done()
            await asyncio.wait_for(done, self._timeout)
        return pushed

    async def close(self) -> None:
        """Log out; a connection already gone is fine."""
        try:
            await asyncio.wait_for(self._client.logout(), self._timeout)
        except Exception:  # noqa: BLE001 - closing a dead connection has nothing to report
            pass


def _quoted(folder: str) -> str:
    escaped = folder.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
