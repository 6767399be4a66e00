"""Field types and envelopes shared by every admin API schema."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from gateway.admin.deps import MAX_ID


def printable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and control characters in names only ever come from mistakes.
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters (tabs, newlines, NUL, ...)")
    return value


def _region(value: str) -> str:
    code = value.upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"unknown region code {value!r}: use an ISO 3166 alpha-2 country code such as FR, IT, PL or US"
        )
    return code


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                 AfterValidator(printable)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
                      AfterValidator(printable)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(printable)]
Region = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_region),
                   Field(description="ISO 3166 alpha-2 country code used to read national phone numbers",
                         examples=["FR"])]
RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
RingTime = Annotated[int, Field(ge=5, le=600, description="seconds one offer rings (5 to 600)", examples=[20])]

T = TypeVar("T")


class Strict(BaseModel):
    """Base of request bodies: unknown fields are an error, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of response bodies, readable straight from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list: `items` plus the bounds that produced it and the total count."""

    items: list[T]
    total: int
    limit: int
    offset: int
