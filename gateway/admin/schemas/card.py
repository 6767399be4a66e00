"""The call card's endpoints (SPEC R8, T4b) as the admin API shows them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from gateway.admin.schemas.common import Out, Strict, printable


def _no_nul(value: str) -> str:
    # A note may hold line breaks; PostgreSQL text never holds NUL.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


CallId = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(printable),
                   Field(description="the call's SIP Call-ID, as the card's events carry it in `call_id`")]
NoteText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
                     AfterValidator(_no_nul)]


class CardCreate(Strict):
    """T4b: create the caller's lead or contact from the card (once per call)."""

    call_id: CallId
    type: Literal["lead", "contact"]


class CardNote(Strict):
    """A note on the call's CRM activity."""

    call_id: CallId
    text: NoteText


class CardCreated(Out):
    """The item is queued behind the call's other CRM writes (C4); it appears within moments, with the
    call's activity, the number's source (T6) and the responsible T10 names."""

    call_id: str
    interaction_key: str
    type: str
    status: Literal["queued"] = "queued"
    responsible_id: int | None
    source_id: int | None
    rule_ids: list[str]


class CardNoted(Out):
    """The note is queued onto the call's activity (and its items' timelines)."""

    call_id: str
    interaction_key: str
    status: Literal["queued"] = "queued"
