"""The levers of the explore page, checked, and turned into a :class:`Scenario` and back.

Everything a person types on the page arrives here as text. :func:`parse_levers`
checks it against the data (amounts in range, slot changes that exist, ESC school IDs
that exist) and either returns :class:`Levers` or raises :class:`LeverError` with one
sentence naming the field, the value and what is allowed. :func:`levers_scenario` makes
the :class:`~studentflow.scenarios.Scenario` that ``studentflow run`` would run;
:func:`scenario_toml` writes it as a scenario file (status quo + this scenario), and
:func:`levers_from_scenarios` reads a scenario file or an optimizer's ``plan.toml`` back
into levers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import tomli_w

from studentflow.errors import DataError
from studentflow.scenarios.spec import TIERS, Scenario

__all__ = ["Levers", "LeverError", "parse_levers", "levers_scenario", "status_quo", "scenario_toml",
           "levers_from_scenarios", "SUBSIDY_MAX", "SLOTS_MAX", "GROUPS"]

#: Largest subsidy change the page accepts, pesos per learner per school year.
SUBSIDY_MAX = 50_000.0
#: Largest number of slots added at one school by one change, learners.
SLOTS_MAX = 5_000
#: Subsidy lever groups: every ESC school, then each location tier.
GROUPS = ("all", *TIERS)
CHOICES = {"capacity": ("billed", "contracted"), "pool": ("grade7", "non_beneficiaries"),
           "method": ("balance", "sequential")}
_GROUP_LABEL = {"all": "all ESC schools", "NCR": "NCR schools", "HUC": "highly urbanised city schools",
                "other": "other schools"}


class LeverError(DataError):
    """A lever value the page cannot use; the message says which and why, in one sentence."""


@dataclass(frozen=True)
class Levers:
    """One setting of the page's levers.

    Attributes
    ----------
    subsidy : dict
        Group (``"all"``, ``"NCR"``, ``"HUC"``, ``"other"``) → pesos added to the ESC
        amount per learner per school year (negative lowers it). ``"all"`` adds to every
        school, on top of its tier's change.
    slots : dict
        ESC school ID → slots added there (negative removes), learners.
    subsidy_at : dict
        ESC school ID → pesos added at that school (a loaded ``plan.toml`` writes its tier
        and catchment increases this way); kept as loaded, not set on the page.
    capacity, pool, method : str
        The scenario options of :class:`~studentflow.scenarios.Scenario`.
    """

    subsidy: dict = field(default_factory=dict)
    slots: dict = field(default_factory=dict)
    subsidy_at: dict = field(default_factory=dict)
    capacity: str = "billed"
    pool: str = "grade7"
    method: str = "balance"

    def as_dict(self) -> dict:
        """Plain JSON-ready form (what the page keeps between callbacks)."""
        return {"subsidy": dict(self.subsidy), "slots": dict(self.slots), "subsidy_at": dict(self.subsidy_at),
                "capacity": self.capacity,
                "pool": self.pool, "method": self.method}


def _number(text, what: str) -> float:
    if text is None or (isinstance(text, str) and not text.strip()):
        return 0.0
    if isinstance(text, bool):
        raise LeverError(f"{what}: {text!r} is not a number")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        cleaned = str(text).strip().replace(",", "").replace("₱", "").replace("PHP", "").strip()
        try:
            value = float(cleaned)
        except ValueError:
            raise LeverError(f"{what}: {str(text)[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise LeverError(f"{what}: {str(text)[:40]!r} is not a finite number")
    return value


def _signed_pesos(v: float) -> str:
    return f"{'−' if v < 0 else '+'}₱{abs(v):,.0f}"


def _esc_id(sid, known, field: str, hint: str = "") -> str:
    """``sid`` as a 6-digit school ID (digits only are zero-filled), or LeverError when it
    is not among ``known``."""
    key = str(sid).strip()
    key = key.zfill(6) if key.isdigit() else key
    if key not in known:
        raise LeverError(f"{field}: {str(sid)[:20]!r} is not the ID of an ESC school in this data{hint}")
    return key


def parse_levers(raw: dict, *, amounts: dict, slots: dict) -> Levers:
    """Check the page's raw lever values and return :class:`Levers`.

    Parameters
    ----------
    raw : dict
        ``subsidy`` (group → text or number, pesos), ``slots`` (school ID → text or
        number, learners), and ``capacity``, ``pool``, ``method``.
    amounts : dict
        Group → the lowest ESC amount today in that group, pesos (a cut below it
        would make the amount negative).
    slots : dict
        ESC school ID → ``(billed, contracted)`` slots of the school today, learners (the
        one the chosen capacity uses bounds a cut).

    Raises
    ------
    LeverError
        One sentence naming the lever, the value typed and the allowed range.
    """
    options = {}
    for key, allowed in CHOICES.items():
        value = raw.get(key) or allowed[0]
        if value not in allowed:
            raise LeverError(f"{key}: {str(value)[:20]!r} is not one of {', '.join(allowed)}")
        options[key] = value
    subsidy = {}
    for group, text in (raw.get("subsidy") or {}).items():
        if group not in GROUPS:
            raise LeverError(f"subsidy: unknown group {str(group)[:20]!r}; expected one of {', '.join(GROUPS)}")
        what = f"subsidy change for {_GROUP_LABEL[group]}"
        value = _number(text, what)
        low = -float(amounts.get(group, 0.0))
        if not low <= value <= SUBSIDY_MAX:
            raise LeverError(f"{what}: {_signed_pesos(value)} is out of range; enter pesos per learner "
                             f"between {_signed_pesos(low)} and {_signed_pesos(SUBSIDY_MAX)}")
        if value:
            subsidy[group] = value
    changes = {}
    for sid, text in (raw.get("slots") or {}).items():
        key = _esc_id(sid, slots, "slots", "; search the list by name or ID")
        value = _number(text, f"slots at school {key}")
        if value != int(value):
            raise LeverError(f"slots at school {key}: {value:g} is not a whole number of slots")
        value = int(value)
        have = int(slots[key][0 if options["capacity"] == "billed" else 1])
        if not -have <= value <= SLOTS_MAX:
            raise LeverError(f"slots at school {key}: {value:+,} is out of range; the school has {have:,} "
                             f"{options['capacity']} slots, so enter between {-have:,} and +{SLOTS_MAX:,}")
        if value:
            changes[key] = value
    at = {}
    for sid, text in (raw.get("subsidy_at") or {}).items():
        key = _esc_id(sid, slots, "subsidy_at")
        value = _number(text, f"subsidy change at school {key}")
        if not -float(amounts.get("all", 0.0)) <= value <= SUBSIDY_MAX:
            raise LeverError(f"subsidy change at school {key}: {_signed_pesos(value)} is out of range")
        if value:
            at[key] = value
    return Levers(subsidy=subsidy, slots=changes, subsidy_at=at, **options)


def status_quo(levers: Levers | None = None) -> Scenario:
    """Today's levers (billed slots, today's amounts) with the options of ``levers``."""
    opts = {} if levers is None else {"pool": levers.pool, "method": levers.method}
    return Scenario("status quo", description="Today: billed slots, today's amounts.", baseline=True,
                    capacity="billed", **opts)


def levers_scenario(levers: Levers, name: str = "explored") -> Scenario:
    """The :class:`~studentflow.scenarios.Scenario` that ``levers`` describe."""
    tiers = {t: levers.subsidy[t] for t in TIERS if levers.subsidy.get(t)}
    desc = "Set on the explore page."
    return Scenario(name, description=desc, subsidy=float(levers.subsidy.get("all", 0.0)), subsidy_by_tier=tiers,
                    add_slots_at=dict(sorted(levers.slots.items())),
                    subsidy_at=dict(sorted(levers.subsidy_at.items())), capacity=levers.capacity,
                    pool=levers.pool, method=levers.method)


def scenario_toml(levers: Levers, name: str = "explored") -> str:
    """A scenario file for ``studentflow run --scenarios``: the status quo, then ``levers``."""
    def table(s: Scenario) -> dict:
        out = {"name": s.name, "description": s.description}
        if s.baseline:
            out["baseline"] = True
        if s.subsidy:
            out["subsidy"] = s.subsidy
        if s.subsidy_by_tier:
            out["subsidy_by_tier"] = dict(s.subsidy_by_tier)
        if s.add_slots_at:
            out["add_slots_at"] = dict(s.add_slots_at)
        if s.subsidy_at:
            out["subsidy_at"] = dict(s.subsidy_at)
        out.update(capacity=s.capacity, pool=s.pool, method=s.method)
        return out

    head = "# Written by `studentflow explore`; run it with `studentflow run --scenarios FILE`.\n"
    return head + tomli_w.dumps({"scenario": [table(status_quo(levers)), table(levers_scenario(levers, name))]})


def levers_from_scenarios(scenarios: list[Scenario], *, source: str = "scenario file") -> Levers:
    """Levers of the first non-baseline scenario of a scenario file or ``plan.toml``.

    Raises
    ------
    LeverError
        When the file has no such scenario, or uses a lever the page cannot show
        (targeted subsidy, moved or scaled slots, a new radius, slots added at every
        school).
    """
    chosen = [s for s in scenarios if not s.baseline] or list(scenarios)
    if not chosen:
        raise LeverError(f"{source}: no scenario in it")
    s = chosen[-1] if len(chosen) == 1 else chosen[0]
    unsupported = [k for k, on in (("subsidy_targeted", s.subsidy_targeted), ("move_slots", s.move_slots),
                                   ("scale_slots", s.scale_slots != 1.0), ("radius_km", s.radius_km is not None),
                                   ("add_slots without add_slots_to", s.add_slots and not s.add_slots_to)) if on]
    if unsupported:
        raise LeverError(f"{source}: scenario {s.name!r} uses {', '.join(unsupported)}, which the explore page "
                         "cannot set; run it with `studentflow run --scenarios`")
    subsidy = {"all": s.subsidy} if s.subsidy else {}
    subsidy.update({t: v for t, v in s.subsidy_by_tier.items() if v})
    slots = {sid: s.add_slots for sid in s.add_slots_to} if s.add_slots else {}
    for sid, n in s.add_slots_at.items():
        slots[sid] = slots.get(sid, 0) + n
    return Levers(subsidy=subsidy, slots=slots, subsidy_at=dict(s.subsidy_at), capacity=s.capacity, pool=s.pool,
                  method=s.method)
