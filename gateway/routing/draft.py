"""The decision being built: the ring steps so far, the rules that put them there and why others were skipped."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.routing.targets import RingStep


@dataclass(frozen=True, slots=True)
class Draft:
    """What the routing steps have decided so far; each step returns a new one (or a final decision)."""

    steps: tuple[RingStep, ...] = ()
    rule_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def rung(self) -> frozenset[int]:
        """The employees some step already rings (SPEC R1: nobody is rung twice in one call)."""
        return frozenset(
            target.employee_id for step in self.steps for target in step.targets if target.employee_id is not None
        )

    def add(
        self,
        *,
        steps: tuple[RingStep, ...] = (),
        rule_ids: tuple[str, ...] = (),
        notes: tuple[str, ...] = (),
    ) -> Draft:
        """This draft with `steps` appended, `rule_ids` added once each (first use keeps its place), and `notes`."""
        new_rules = tuple(dict.fromkeys((*self.rule_ids, *rule_ids)))
        return Draft((*self.steps, *steps), new_rules, (*self.notes, *notes))
