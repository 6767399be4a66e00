"""The SMTP adapter: which relay a mailbox sends through, and one send through aiosmtplib.

A mailbox that names its own relay (``smtp_host``) uses it; otherwise the ``[mail]`` relay of the
configuration. Secrets travel only to the relay: never logged, never part of an error message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aiosmtplib

from gateway.config import MailConfig
from gateway.storage.models import Mailbox

log = logging.getLogger(__name__)


class NoRelay(LookupError):
    """Neither the mailbox nor the configuration names an SMTP relay."""


@dataclass(frozen=True)
class Relay:
    """Where and how to hand a mail over."""

    host: str
    port: int
    tls_mode: str  # tls | starttls | none
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0


@dataclass(frozen=True)
class SmtpOutcome:
    """What the relay answered: accepted (for every recipient) or not, and its reply line."""

    accepted: bool
    reply: str


def relay_for(mailbox: Mailbox, default: MailConfig) -> Relay:
    """The mailbox's own relay, else the configuration's; NoRelay when there is none."""
    if mailbox.smtp_host:
        port = mailbox.smtp_port or (465 if mailbox.smtp_tls_mode == "tls" else 587)
        return Relay(mailbox.smtp_host, port, mailbox.smtp_tls_mode, mailbox.smtp_login, mailbox.smtp_secret,
                     float(default.timeout_seconds))
    if default.smtp_host:
        return Relay(default.smtp_host, default.smtp_port, default.smtp_tls, default.smtp_login or None,
                     default.smtp_password or None, float(default.timeout_seconds))
    raise NoRelay(f"no SMTP relay for {mailbox.address}: set the mailbox's smtp_host or [mail] smtp_host "
                  "in the configuration")


async def send(relay: Relay, message: bytes, sender: str, recipients: list[str]) -> SmtpOutcome:
    """Hand ``message`` (the bytes stored for it) to the relay; a refusal or a network failure is an
    outcome, not an exception."""
    try:
        responses, reply = await aiosmtplib.send(
            message, sender=sender, recipients=recipients, hostname=relay.host, port=relay.port,
            username=relay.login or None, password=relay.password or None, timeout=relay.timeout,
            use_tls=relay.tls_mode == "tls", start_tls=True if relay.tls_mode == "starttls" else False,
        )
    except aiosmtplib.SMTPResponseException as exc:
        return SmtpOutcome(False, f"{exc.code} {exc.message}")
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return SmtpOutcome(False, "; ".join(f"{e.recipient}: {e.code} {e.message}" for e in exc.recipients))
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        log.warning("SMTP relay %s:%s failed: %s", relay.host, relay.port, type(exc).__name__)
        return SmtpOutcome(False, f"relay {relay.host}:{relay.port} unreachable: {type(exc).__name__}")
    refused = {rcpt: r for rcpt, r in responses.items() if not 200 <= r.code < 300}
    if refused:
        return SmtpOutcome(False, "; ".join(f"{rcpt}: {r.code} {r.message}" for rcpt, r in refused.items()))
    return SmtpOutcome(True, reply)
