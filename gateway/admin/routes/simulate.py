"""POST /simulate/call: the LinkPlan a call would get now, writing nothing (issue #3 item 7)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.admin.auth import NumberManager
from gateway.admin.deps import SessionDep
from gateway.admin.errors import invalid
from gateway.admin.schemas.crm import SimulateCall, SimulatedPlanOut
from gateway.crm_bridge.call_hooks import UnknownNumber, simulate_call
from gateway.crm_bridge.linking import explain_lines

router = APIRouter(tags=["decisions"])


@router.post("/simulate/call", response_model=SimulatedPlanOut, summary="Dry-run the linking of a call")
async def simulate(body: SimulateCall, session: SessionDep, operator: NumberManager) -> SimulatedPlanOut:
    """Admins and number managers. Reads the number, CRM settings and CRM items; writes nothing."""
    if body.direction == "outbound" and body.employee_id is None:
        raise invalid("employee_id: an outbound call is placed by an employee; give their id (T10)")
    try:
        plan = await simulate_call(session, body.number, body.from_, body.direction, agent_id=body.employee_id)
    except UnknownNumber as exc:
        raise invalid(f"number: {exc}") from exc
    finally:
        await session.rollback()  # a dry run: whatever the decision path touched is thrown away
    return SimulatedPlanOut.model_validate({**plan.to_dict(), "explanation": explain_lines(plan)})
