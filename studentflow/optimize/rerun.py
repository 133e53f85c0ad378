"""The plan as a scenario file (``plan.toml``), so ``studentflow run --scenarios plan.toml``
repeats it.

The plan's steps are replayed on the problem's status quo (:func:`final_state`) and the
result written with the scenario keys that name schools: ``add_slots_at`` (slots added per
ESC school) and ``subsidy_at`` (pesos added per ESC school, which is how a tier's or a
catchment's increase reaches its schools), beside the status quo it started from
(billed slots, today's amounts). Public JHS seats have no scenario key: a plan buying
them says so in a comment, and the run repeats the rest.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from studentflow.optimize.actions import apply
from studentflow.optimize.problem import State

__all__ = ["final_state", "plan_scenario", "plan_toml", "raised_schools"]


def final_state(problem, plan, fill_shares=tuple(np.arange(1, 11) / 10)) -> State:
    """The state the plan's steps lead to from the status quo (merged steps replayed:
    a subsidy step of ``k × subsidy_step`` pesos is ``k`` steps)."""
    state = State.status_quo(problem)
    opened = 0.0
    for st in plan.steps:
        a = st.action
        if a.kind == "subsidy":
            for _ in range(max(1, int(round(st.amount / problem.subsidy_step)))):
                state = apply(problem, state, a, problem.subsidy_step)
        elif a.kind == "fill_slots":  # opening a share of the unused contracted slots
            opened += st.amount
            unused = np.clip(problem.contracted - problem.capacities, 0, None)
            for share in fill_shares:
                caps = problem.capacities + np.floor(share * unused)
                if abs((caps - problem.capacities).sum() - opened) < 0.5:
                    state = State(state.steps, np.maximum(state.capacities, caps), state.seats)
                    break
        else:
            state = apply(problem, state, a, st.amount)
    return state


def plan_scenario(problem, plan, status_quo=None, name: str = "plan"):
    """(status quo, plan) scenarios: the plan as slots and pesos added at named schools."""
    from studentflow.scenarios.spec import study_scenarios

    sq = status_quo if status_quo is not None else study_scenarios()[0]
    state = final_state(problem, plan)
    added = np.rint(state.capacities - problem.capacities).astype(np.int64)
    pesos = state.steps * problem.subsidy_step
    ids = problem.school_ids
    slots = {str(ids[j]): int(added[j]) for j in np.flatnonzero(added > 0)}
    subsidy = {str(ids[j]): float(pesos[j]) for j in np.flatnonzero(pesos > 0)}
    base = dataclasses.replace(sq, baseline=True, compare_to=None)
    desc = (f"The optimizer's plan: {int(added.sum()):,} slots at {len(slots)} ESC schools, the ESC amount "
            f"raised at {len(subsidy)} schools.")
    return base, dataclasses.replace(sq, name=name, description=desc, baseline=False, compare_to=None,
                                     add_slots_at=slots, subsidy_at=subsidy)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, float):
        return repr(float(v))
    if isinstance(v, dict):
        return "{ " + ", ".join(f"\"{k}\" = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _table(s) -> list[str]:
    from studentflow.scenarios.spec import Scenario

    plain = Scenario("x")
    lines = ["[[scenario]]"]
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        if f.name != "name" and (v == getattr(plain, f.name) or v is None):
            continue
        lines.append(f"{f.name} = {_value(v)}")
    return lines


def plan_toml(result, status_quo=None) -> str:
    """``plan.toml``: the status quo and the plan of an :class:`OptimizeResult` as
    ``[[scenario]]`` tables, with the plan's relief and cost in the header."""
    base, plan = plan_scenario(result.problem, result.plan, status_quo)
    r, c = result.relief, result.cost
    seats = sum(st.amount for st in result.plan.steps if st.action.kind == "public_seats")
    head = [f"# The plan of `studentflow optimize --budget {result.budget:.0f}` ({result.draws} draws, "
            f"seed {result.seed}), as scenarios.",
            f"# It relieves {r[0]:,.1f} learners (95 % interval {r[1]:,.1f}-{r[2]:,.1f}) from congested public JHS "
            f"for ₱{c[0]:,.0f} (₱{c[1]:,.0f}-₱{c[2]:,.0f}) per school year.",
            "# Repeat it: studentflow run --scenarios plan.toml (relieved vs baseline of scenario \"plan\")."]
    if seats:
        head.append(f"# Not expressible as a scenario, so not repeated: {seats:,.0f} public JHS seats added.")
    return "\n".join(head + [""] + _table(base) + [""] + _table(plan)) + "\n"


def raised_schools(problem, plan) -> "pd.DataFrame":
    """ESC schools whose amount the plan raises: ``school_id``, ``subsidy_change`` (pesos
    per learner per year) and ``via`` (the plan's subsidy targets reaching it)."""
    import pandas as pd

    from studentflow.optimize.actions import _incidence

    state = final_state(problem, plan)
    via: dict = {}
    for st in plan.steps:
        if st.action.kind == "subsidy":
            for j in np.flatnonzero(_incidence(problem, st.action)):
                via.setdefault(int(j), []).append(st.action.target)
    rows = [{"school_id": str(problem.school_ids[j]), "subsidy_change": float(state.steps[j] * problem.subsidy_step),
             "via": "; ".join(dict.fromkeys(via.get(int(j), [])))} for j in np.flatnonzero(state.steps > 0)]
    return pd.DataFrame(rows, columns=["school_id", "subsidy_change", "via"])
