"""RFC 4028 session timers across the B2BUA: what crosses between legs, and the interval to watch.

The endpoints negotiate and refresh; the gateway takes the part RFC 4028 §8 gives a proxy on the
path: it may lower Session-Expires to its own maximum (never below Min-SE), raises Min-SE to its
own minimum, answers 422 to an interval below that minimum, and learns the interval from the 2xx
so it can end a call nobody refreshes (§10).

Which headers cross, and why:

- Session-Expires and Min-SE are end to end: the interval and who refreshes ("refresher=uac|uas")
  are agreed between the two endpoints. The legs keep each transaction's direction (the UAC of a
  relayed request is the UAC's side), so "uac" and "uas" keep their meaning on the other leg.
- Supported is hop by hop and rebuilt on each leg: only "timer" crosses, and only when the sender
  named it, because it promises that the sender will refresh when asked to (§7.1). Other option tags
  (100rel, replaces...) would promise behaviour the gateway does not carry across legs.
- Require: timer in a request is honoured by the gateway itself and not relayed: the gateway makes
  sure the 2xx names an interval (§8.2, inserting one with refresher=uac when the callee has no
  session timers), so a callee without them still takes the call instead of answering 420.
- Require: timer in a 2xx is written by the gateway for the side it answers, whenever that 2xx
  carries Session-Expires and the requester supports timers (§9).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sip.errors import RemoteProtocolError
from gateway.sip.headers import split_comma_values
from gateway.sip.message import Request, Response, make_response

TIMER = "timer"
# §4: the lowest Min-SE anyone may ask for; also the gateway's own minimum.
RFC_MIN_SE = 90
# §4 recommends 1800 s as a UAC's default; the gateway lowers longer offers to it, so a call whose
# caller vanished is noticed within half an hour instead of when the offer says.
DEFAULT_MAX_SE = 1800
_REFRESHERS = ("uac", "uas")


@dataclass(frozen=True, slots=True)
class SessionTimerPolicy:
    """The gateway's own bounds on the session interval, in seconds."""

    min_se: int = RFC_MIN_SE
    max_se: int = DEFAULT_MAX_SE

    def __post_init__(self) -> None:
        if self.min_se < RFC_MIN_SE:
            raise ValueError(f"min_se must be at least {RFC_MIN_SE} s (RFC 4028 §4)")
        if self.max_se < self.min_se:
            raise ValueError("max_se must not be below min_se")


@dataclass(frozen=True, slots=True)
class TimerOffer:
    """What a refresh-capable request (INVITE, UPDATE) says about session timers, once the gateway
    applied its bounds: `supported` when the requester can refresh, `expires`/`refresher`/`min_se` as
    they go on to the other leg (None: absent)."""

    supported: bool
    expires: int | None
    refresher: str | None
    min_se: int | None


NO_OFFER = TimerOffer(False, None, None, None)


class IntervalTooSmall(Exception):
    """The offered interval is below the minimum: answer 422 with `Min-SE: min_se` (§6)."""

    def __init__(self, min_se: int) -> None:
        super().__init__(f"Session-Expires below {min_se} s")
        self.min_se = min_se


def interval_too_small(request: Request, min_se: int, to_tag: str | None = None) -> Response:
    """§6: the 422 naming the smallest interval the gateway accepts."""
    response = make_response(request, 422, to_tag=to_tag)
    response.headers.append(("Min-SE", str(min_se)))
    return response


def option_tags(message: Request | Response, header: str) -> set[str]:
    """The option tags of every `header` (Supported, Require) value, lower-case."""
    return {tag.lower() for value in message.get_all(header) for tag in split_comma_values(value)}


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """(seconds, refresher) of a Session-Expires value; RemoteProtocolError 400 when malformed (§4)."""
    number, _, params = value.partition(";")
    seconds = _delta_seconds(number, "Session-Expires")
    refresher: str | None = None
    for param in params.split(";") if params else ():
        name, _, raw = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = raw.strip().lower()
            if refresher not in _REFRESHERS:
                raise RemoteProtocolError("Session-Expires refresher must be uac or uas", 400)
    if seconds == 0:
        raise RemoteProtocolError("Session-Expires must be at least 1 second", 400)
    return seconds, refresher


def parse_min_se(value: str) -> int:
    """The seconds of a Min-SE value (parameters ignored, §5); RemoteProtocolError 400 when malformed."""
    return _delta_seconds(value.partition(";")[0], "Min-SE")


def _delta_seconds(text: str, header: str) -> int:
    text = text.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 10:
        raise RemoteProtocolError(f"malformed {header}: expected a number of seconds", 400)
    return int(text)


def read_offer(request: Request, policy: SessionTimerPolicy) -> TimerOffer:
    """The request's offer within the gateway's bounds (§8.1); raises IntervalTooSmall for a 422."""
    tags = option_tags(request, "Supported") | option_tags(request, "Require")
    supported = TIMER in tags
    header = request.get("Session-Expires")
    min_se_header = request.get("Min-SE")
    asked_min = parse_min_se(min_se_header) if min_se_header is not None else RFC_MIN_SE
    floor = max(policy.min_se, asked_min)
    if header is None:
        if not supported:
            # Min-SE still crosses: a callee inserting an interval of its own must respect it (§9).
            asked = min_se_header is not None or policy.min_se > RFC_MIN_SE
            return TimerOffer(False, None, None, floor if asked else None)
        # §8.1: a proxy MAY insert Session-Expires; the gateway does, so a call whose requester can
        # refresh is always watched.
        return TimerOffer(True, max(policy.max_se, floor), None, floor)
    expires, refresher = parse_session_expires(header)
    if expires < floor:
        if supported:
            raise IntervalTooSmall(floor)
        # §8.1: a 422 would not be understood by a requester without timers: raise the interval instead.
        expires = floor
    # §8.1: lowered to the gateway's maximum, never below the Min-SE asked for.
    return TimerOffer(supported, max(min(expires, policy.max_se), floor), refresher, floor)


def write_offer(offer: TimerOffer, relayed: Request) -> None:
    """Put the offer on the request relayed to the other leg."""
    if offer.supported:
        relayed.headers.append(("Supported", TIMER))
    if offer.expires is not None:
        value = str(offer.expires)
        if offer.refresher is not None:
            value += f";refresher={offer.refresher}"
        relayed.headers.append(("Session-Expires", value))
    if offer.min_se is not None:
        relayed.headers.append(("Min-SE", str(offer.min_se)))


def answer_interval(offer: TimerOffer, response: Response, relayed: Response) -> int | None:
    """The session interval a 2xx agrees on, written onto `relayed` (the 2xx for the requester).

    The answering side's Session-Expires crosses as it is; when it has none but the requester can
    refresh, the gateway names the offered interval with refresher=uac (§8.2). None: no session timer.
    """
    header = response.get("Session-Expires")
    value: str | None = None
    seconds: int | None = None
    if header is not None:
        try:
            seconds = parse_session_expires(header)[0]
            value = header
        except RemoteProtocolError:
            seconds = None  # a 2xx cannot be refused: a malformed interval counts as none
    if seconds is None and offer.supported and offer.expires is not None:
        seconds, value = offer.expires, f"{offer.expires};refresher=uac"
    if value is None:
        return None
    relayed.headers.append(("Session-Expires", value))
    if offer.supported:
        relayed.headers.append(("Require", TIMER))  # §9: tells the requester the timer is on
    return seconds


def expiry_delay(interval: float) -> float:
    """When the session is given up without a refresh: §10, the interval minus min(32, interval/3)."""
    return interval - min(32.0, interval / 3)
