"""/decisions/{interaction}: the LinkPlan stored for a call or email, with its rule ids (SPEC C1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from gateway.admin.auth import NumberManager
from gateway.admin.deps import SessionDep
from gateway.admin.schemas.crm import DecisionOut, LinkPlanOut
from gateway.crm_bridge.linking import LinkPlan, explain_lines
from gateway.storage.models import Decision

router = APIRouter(tags=["decisions"])

InteractionKey = Annotated[str, Path(
    min_length=1, max_length=255,
    description="the interaction key: 'call:<Call-ID>' or 'email:<Message-ID>'",
    examples=["call:a84b4c76e66710@pc33.example.com"],
)]


@router.get("/decisions/{interaction_key:path}", response_model=DecisionOut,
            summary="Why the CRM did what it did for one call or email")
async def read_decision(interaction_key: InteractionKey, session: SessionDep,
                        operator: NumberManager) -> DecisionOut:
    """Admins and number managers (the plan names CRM items regardless of item rights)."""
    row = await session.get(Decision, interaction_key)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
            f"no decision is stored for {interaction_key!r}: the key is 'call:<Call-ID>' or "
            "'email:<Message-ID>' of an interaction the gateway has handled"))
    plan = LinkPlan.from_dict(row.plan)
    return DecisionOut(interaction_key=row.interaction_key, channel=row.channel,
                       plan=LinkPlanOut.model_validate(plan.to_dict()), rule_ids=list(plan.rule_ids),
                       explanation=explain_lines(plan), created_at=row.created_at)
