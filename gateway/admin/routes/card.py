"""/card: the call card (SPEC R8, T4b) — each employee's own event stream, and what they do from a card.

`GET /card/stream` is a Server-Sent Events stream (`text/event-stream`) of the token owner's cards only:
`ringing`, `answered`, `transferred`, `ended`, each `id:` / `event:` / `data:` (one JSON line), with
`: keep-alive` comments in between. A client reconnecting with `Last-Event-ID` gets what it missed of the
calls still on (and the ends of those that ended within the last minute); a new stream starts with the
cards of the calls still on. It is left out of the OpenAPI schema: OpenAPI cannot describe a stream,
and a generated client would wait on it forever.

`POST /card/create` (T4b) and `POST /card/note` act on a call whose card went to the caller, with their
own CRM rights; both queue their write behind the call's others (C4) and answer 202.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.auth import CurrentPrincipal, Principal
from gateway.admin.deps import SessionDep
from gateway.admin.errors import conflict, forbidden
from gateway.admin.schemas.card import CardCreate, CardCreated, CardNote, CardNoted
from gateway.calls.card_events import CardHub
from gateway.crm_bridge import call_hooks, call_notes
from gateway.crm_bridge.rights import load_actor
from gateway.storage.models import Call

router = APIRouter(prefix="/card", tags=["call card"])

#: Seconds between keep-alive comments (proxies close a silent connection); `app.state.card_keepalive_s`.
KEEPALIVE_S = 15.0
#: What an EventSource waits before reconnecting, in milliseconds.
RETRY_MS = 2000
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _hub(request: Request) -> CardHub | None:
    return getattr(request.app.state, "card_hub", None)


def _after(last_event_id: str | None) -> int | None:
    if last_event_id is None or not last_event_id.strip():
        return None
    try:
        return int(last_event_id.strip())
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=(
            "Last-Event-ID: send the id of the last event this stream gave you (a whole number), "
            "or no Last-Event-ID to start afresh")) from None


async def _events(hub: CardHub, employee_id: int, after: int | None, keepalive: float) -> AsyncIterator[str]:
    stream = hub.subscribe(employee_id, after)
    try:
        yield f"retry: {RETRY_MS}\n: the call card of employee {employee_id}\n\n"
        for missed in stream.backlog:
            yield missed.sse()
        while True:
            try:
                event = await asyncio.wait_for(stream.queue.get(), keepalive)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if event is None:  # the gateway stops, or this reader fell behind: the client reconnects
                return
            yield event.sse()
    finally:
        hub.unsubscribe(employee_id, stream)


@router.get("/stream", include_in_schema=False)
async def card_stream(
    request: Request, session: SessionDep, principal: CurrentPrincipal,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    """The token owner's call cards as Server-Sent Events (R8); nobody reads another employee's."""
    hub = _hub(request)
    if hub is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail="the call card needs live calls: run the gateway with its database")
    after = _after(last_event_id)
    await session.close()  # the stream lasts; its database connection goes back to the pool now
    keepalive = float(getattr(request.app.state, "card_keepalive_s", KEEPALIVE_S))
    return StreamingResponse(_events(hub, principal.employee_id, after, keepalive),
                             media_type="text/event-stream", headers=_HEADERS)


async def _card_call(session: AsyncSession, hub: CardHub | None, call_id: str, principal: Principal) -> Call:
    """The call-log row of the call, when its card went to `principal` (403 otherwise)."""
    call = await session.scalar(select(Call).where(Call.interaction_key == call_hooks.call_key(call_id)))
    if call is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
            f"no call {call_id!r} in the call log: use the call_id of a card event (it may take a moment "
            "to reach the log)"))
    offered: AbstractSet[int | None] = {*(hub.offered_to(call_id) if hub else ()), *(call.offered_ids or ()),
                                         call.answered_by_id}
    if principal.employee_id not in offered:
        raise forbidden("this call's card was not offered to you: only the employees it rang act on it")
    return call


def _lock(hub: CardHub | None, call_id: str) -> contextlib.AbstractAsyncContextManager[object]:
    # Two clicks at once must not both pass the once-per-call check (T4b).
    return hub.lock_for(call_id) if hub is not None else contextlib.nullcontext()


@router.post("/create", response_model=CardCreated, status_code=status.HTTP_202_ACCEPTED,
             summary="Create the caller's lead or contact from the call card (T4b)")
async def create_from_card(body: CardCreate, request: Request, session: SessionDep,
                           principal: CurrentPrincipal) -> CardCreated:
    """Once per call (a second attempt: 409), on a number set to offer_in_card, by an employee the call
    rang, with their own right to create that item (403). The item gets the call's activity."""
    hub = _hub(request)
    async with _lock(hub, body.call_id):
        call = await _card_call(session, hub, body.call_id, principal)
        made = await call_hooks.card_item_types(session, body.call_id)
        if made:
            raise conflict(f"a {sorted(made)[0]} was already created from this call's card: "
                           "the card creates one item per call (T4b)")
        try:
            plan = await call_hooks.create_from_card(
                session, call_id=body.call_id, number=call.number, party_raw=call.party_e164 or call.party_raw,
                direction=call.direction, item_type=body.type, actor=await load_actor(session, principal.employee_id),
            )
        except call_hooks.CardNotOffered as error:
            raise conflict(str(error)) from None
        except LookupError as error:
            raise conflict(f"{error}: the call's CRM decision is not written yet") from None
        await session.commit()
    if hub is not None:
        hub.wake_outbox()
    return CardCreated(call_id=body.call_id, interaction_key=call.interaction_key, type=body.type,
                       responsible_id=plan.responsible_id, source_id=plan.source_id, rule_ids=list(plan.rule_ids))


@router.post("/note", response_model=CardNoted, status_code=status.HTTP_202_ACCEPTED,
             summary="Attach a note to the call's CRM activity")
async def note_on_card(body: CardNote, request: Request, session: SessionDep,
                       principal: CurrentPrincipal) -> CardNoted:
    """By an employee the call rang. 409 when the call has no CRM activity (T4b before an item was created
    from the card, T8, T9, a number creating nothing for this direction)."""
    hub = _hub(request)
    call = await _card_call(session, hub, body.call_id, principal)
    try:
        await call_notes.note_call(session, call_id=body.call_id, employee_id=principal.employee_id, text=body.text)
    except call_notes.NoCallActivity as error:
        raise conflict(str(error)) from None
    except LookupError as error:
        raise conflict(f"{error}: the call's CRM decision is not written yet") from None
    await session.commit()
    if hub is not None:
        hub.wake_outbox()
    return CardNoted(call_id=body.call_id, interaction_key=call.interaction_key)
