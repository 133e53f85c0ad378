"""Scenario specifications: what a policy scenario changes, read from TOML.

A scenario is data, not code. Each one says how the ESC subsidy changes (pesos),
how ESC slots change (learners), which origin→school pairs are candidates (km) and
which learners form an origin's pool. :func:`load_scenarios` reads a TOML file of
``[[scenario]]`` tables (with an optional ``[defaults]`` table) into a list of
:class:`Scenario`; nothing in the file is evaluated as Python.

Example
-------
.. code-block:: toml

    [defaults]
    capacity = "contracted"      # or "billed" (status quo)
    pool = "grade7"              # or "non_beneficiaries"
    method = "balance"           # or "sequential" (the study's allocator)

    [[scenario]]
    name = "baseline"
    baseline = true
    capacity = "billed"

    [[scenario]]
    name = "net cost -5K"
    subsidy = 5000               # pesos added to every ESC school's amount

    [[scenario]]
    name = "tiered"
    subsidy_by_tier = { NCR = 2000, HUC = 1000, other = 0 }

    [[scenario]]
    name = "poorer LGUs +5K"
    subsidy_targeted = { revenue_quantile = 0.25, amount = 5000 }

    [[scenario]]
    name = "a plan"              # as `studentflow optimize` writes plan.toml
    capacity = "billed"
    add_slots_at = { "400123" = 40, "400456" = 15 }   # slots added at named schools
    subsidy_at = { "400123" = 2000, "400789" = 3000 }  # pesos added at named schools
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from studentflow.errors import DataError

Capacity = Literal["contracted", "billed"]
Pool = Literal["grade7", "non_beneficiaries"]
Method = Literal["balance", "sequential"]

TIERS = ("NCR", "HUC", "other")


@dataclass(frozen=True)
class Scenario:
    """One policy scenario.

    Parameters
    ----------
    name : str
        Unique label (used in tables and figures).
    description : str
        One sentence for the report.
    baseline : bool
        The scenario others are compared with (default: the first one in a file).
    subsidy : float
        Extra ESC amount for every ESC school, pesos per learner per year. Raising the
        amount by ₱1,000 lowers net cost (``max(0, tuition − amount)``) by up to 1K.
    subsidy_by_tier : dict
        Extra pesos by the school's location tier, keys among ``"NCR"``, ``"HUC"``,
        ``"other"`` (missing keys add 0).
    subsidy_targeted : tuple (revenue_quantile, amount) or None
        Extra pesos only for learners from origins whose LGU revenue is below the given
        quantile of origin LGU revenue. This changes single entries of the expected-flow
        matrix, so it can displace learners of other origins: see ``displaced``.
    capacity : {"contracted", "billed"}
        Slots available per ESC school: contracted slots (the study's default) or billed
        slots (the status quo).
    add_slots : int
        Slots added to every ESC school, or to those in ``add_slots_to``, learners.
    add_slots_to : tuple of str
        School ids receiving ``add_slots`` (empty = every ESC school).
    scale_slots : float
        Multiply every school's slots by this factor (rounded down), applied before
        ``add_slots``.
    move_slots : int
        Slots moved budget-neutrally from under-used schools (billed < contracted) to
        full ones (billed ≥ contracted), learners; applied first.
    add_slots_at : dict
        School id → slots added there (learners; negative removes, a school never goes
        below 0), after ``add_slots``; what a plan of ``studentflow optimize`` adds school
        by school, or the explore page's slot changes. An id that is not an ESC school of
        the run's pair table is an error.
    subsidy_at : dict
        School id → extra pesos per learner per year at that school, on top of
        ``subsidy`` and ``subsidy_by_tier`` (a plan's tier and catchment increases,
        written out per school).
    radius_km : float or None
        Keep only new candidate pairs within this road distance (km); None keeps the
        pair table as built.
    pool : {"grade7", "non_beneficiaries"}
        Origin pool: all Grade 7 learners of a candidate origin (the study's code) or
        those minus current ESC beneficiaries (the study's text).
    method : {"balance", "sequential"}
        Allocator: the order-free balancing solution or the study's shuffled sequential
        depletion.
    compare_to : str or None
        Scenario name against which displaced learners are counted (default baseline).
    """

    name: str
    description: str = ""
    baseline: bool = False
    subsidy: float = 0.0
    subsidy_by_tier: dict = field(default_factory=dict)
    subsidy_targeted: tuple[float, float] | None = None
    capacity: Capacity = "contracted"
    add_slots: int = 0
    add_slots_to: tuple[str, ...] = ()
    scale_slots: float = 1.0
    move_slots: int = 0
    add_slots_at: dict = field(default_factory=dict)
    subsidy_at: dict = field(default_factory=dict)
    radius_km: float | None = None
    pool: Pool = "grade7"
    method: Method = "balance"
    compare_to: str | None = None

    def __hash__(self) -> int:  # dict field: hash the items
        return hash((self.name, tuple(sorted(self.subsidy_by_tier.items())), self.subsidy))

    @property
    def changes_subsidy(self) -> bool:
        """True if any subsidy lever is set."""
        return bool(
            self.subsidy
            or any(v for v in self.subsidy_by_tier.values())
            or (self.subsidy_targeted and self.subsidy_targeted[1])
            or any(v for v in self.subsidy_at.values())
        )

    def summary(self) -> str:
        """One line describing the levers this scenario pulls."""
        parts = [f"capacity={self.capacity}", f"pool={self.pool}", f"method={self.method}"]
        if self.subsidy:
            parts.append(f"subsidy=+₱{self.subsidy:,.0f}")
        if self.subsidy_by_tier:
            parts.append(
                "subsidy by tier=" + ",".join(f"{k}+₱{v:,.0f}" for k, v in self.subsidy_by_tier.items())
            )
        if self.subsidy_targeted:
            q, a = self.subsidy_targeted
            parts.append(f"+₱{a:,.0f} for origins below the {q:.0%} LGU-revenue quantile")
        if self.move_slots:
            parts.append(f"move {self.move_slots:,} slots")
        if self.scale_slots != 1.0:
            parts.append(f"slots x{self.scale_slots:g}")
        if self.add_slots:
            where = f" at {len(self.add_slots_to)} schools" if self.add_slots_to else " per school"
            parts.append(f"+{self.add_slots:,} slots{where}")
        if self.add_slots_at:
            net = sum(self.add_slots_at.values())
            parts.append(f"slots {net:+,} at {len(self.add_slots_at)} named schools")
        if self.subsidy_at:
            parts.append(f"subsidy changed at {len(self.subsidy_at)} named schools")
        if self.radius_km is not None:
            parts.append(f"radius {self.radius_km:g} km")
        return f"{self.name}: " + ", ".join(parts)

    @classmethod
    def from_toml(cls, path) -> list["Scenario"]:
        """Read every ``[[scenario]]`` of a TOML file; see :func:`load_scenarios`."""
        return load_scenarios(path)


# ---------------------------------------------------------------- TOML parsing
_KEYS: dict[str, str] = {f.name: "" for f in fields(Scenario)}
_EXPECT = {
    "name": "a string",
    "description": "a string",
    "baseline": "a boolean",
    "subsidy": "a number (pesos)",
    "subsidy_by_tier": "a table {NCR = pesos, HUC = pesos, other = pesos}",
    "subsidy_targeted": "a table {revenue_quantile = number in (0, 1), amount = pesos}",
    "capacity": 'one of "contracted", "billed"',
    "add_slots": "a non-negative integer (slots)",
    "add_slots_to": "a list of 6-digit school id strings",
    "add_slots_at": 'a table {"school id" = slots added (negative removes)}',
    "subsidy_at": 'a table {"school id" = pesos}',
    "scale_slots": "a positive number (factor)",
    "move_slots": "a non-negative integer (slots)",
    "radius_km": "a positive number (km)",
    "pool": 'one of "grade7", "non_beneficiaries"',
    "method": 'one of "balance", "sequential"',
    "compare_to": "a scenario name (string)",
}
_CHOICES = {
    "capacity": ("contracted", "billed"),
    "pool": ("grade7", "non_beneficiaries"),
    "method": ("balance", "sequential"),
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_one(raw: dict, *, where: str, bad) -> Scenario:
    for key in raw:
        if key not in _KEYS:
            bad(key, f"unknown key; expected one of {sorted(_KEYS)}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        expect = _EXPECT[key]
        if key in ("name", "description", "compare_to"):
            if not isinstance(value, str) or (key == "name" and not value.strip()):
                bad(key, f"expected {expect}, got {type(value).__name__}")
            out[key] = value.strip() if key == "name" else value
        elif key == "baseline":
            if not isinstance(value, bool):
                bad(key, f"expected {expect}, got {type(value).__name__}")
            out[key] = value
        elif key == "subsidy":
            if not _is_number(value):
                bad(key, f"expected {expect}, got {type(value).__name__}")
            out[key] = float(value)
        elif key == "subsidy_by_tier":
            if not isinstance(value, dict):
                bad(key, f"expected {expect}, got {type(value).__name__}")
            for tier, amount in value.items():
                if tier not in TIERS:
                    bad(f"{key}.{tier}", f"unknown tier; expected {expect}")
                if not _is_number(amount):
                    bad(f"{key}.{tier}", f"expected a number (pesos), got {type(amount).__name__}")
            out[key] = {t: float(a) for t, a in value.items()}
        elif key == "subsidy_targeted":
            if not isinstance(value, dict) or set(value) != {"revenue_quantile", "amount"}:
                bad(key, f"expected {expect}, got {value!r}")
            q, a = value["revenue_quantile"], value["amount"]
            if not _is_number(q) or not 0 < q < 1:
                bad(f"{key}.revenue_quantile", f"expected a number in (0, 1), got {q!r}")
            if not _is_number(a):
                bad(f"{key}.amount", f"expected a number (pesos), got {type(a).__name__}")
            out[key] = (float(q), float(a))
        elif key in ("add_slots", "move_slots"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                bad(key, f"expected {expect}, got {value!r}")
            out[key] = value
        elif key == "add_slots_to":
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                bad(key, f"expected {expect}, got {type(value).__name__}")
            out[key] = tuple(s.strip().zfill(6) for s in value)
        elif key == "add_slots_at":
            if not isinstance(value, dict):
                bad(key, f"expected {expect}, got {type(value).__name__}")
            for sid, n in value.items():
                if not isinstance(n, int) or isinstance(n, bool):
                    bad(f"{key}.{sid}", f"expected a whole number of slots, got {n!r}")
            out[key] = {str(sid).strip().zfill(6): int(n) for sid, n in value.items()}
        elif key == "subsidy_at":
            if not isinstance(value, dict) or not all(_is_number(v) for v in value.values()):
                bad(key, f"expected {expect}, got {value!r}")
            out[key] = {str(sid).strip().zfill(6): float(v) for sid, v in value.items()}
        elif key in ("scale_slots", "radius_km"):
            if not _is_number(value) or value <= 0:
                bad(key, f"expected {expect}, got {value!r}")
            out[key] = float(value)
        elif key in _CHOICES:
            if not isinstance(value, str) or value not in _CHOICES[key]:
                bad(key, f"expected {expect}, got {value!r}")
            out[key] = value
    if "name" not in out:
        bad("name", f"missing; expected {_EXPECT['name']}")
    return Scenario(**out)


def parse_scenarios(data: dict, *, source: str = "<scenarios>") -> list[Scenario]:
    """Scenarios from an already-parsed TOML mapping (``[defaults]`` + ``[[scenario]]``).

    Raises
    ------
    DataError
        Naming ``source``, the scenario, the key and the expected type.
    """
    unknown = set(data) - {"defaults", "scenario"}
    if unknown:
        raise DataError(
            f"{source}: unknown top-level key {sorted(unknown)[0]!r}; expected "
            "'defaults' (a table) and 'scenario' (an array of tables, [[scenario]])"
        )
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise DataError(f"{source}: key 'defaults' expected a table, got {type(defaults).__name__}")
    items = data.get("scenario")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise DataError(f"{source}: key 'scenario' expected a non-empty array of tables ([[scenario]])")

    def make_bad(where: str):
        def bad(key: str, why: str):
            raise DataError(f"{source}: {where}, key {key!r}: {why}")

        return bad

    for key in ("name", "baseline"):
        if key in defaults:
            make_bad("[defaults]")(key, "cannot be set in [defaults]")
    _parse_one(dict(defaults, name="defaults"), where="[defaults]", bad=make_bad("[defaults]"))

    out: list[Scenario] = []
    for k, raw in enumerate(items, start=1):
        label = f"[[scenario]] #{k}" + (f" ({raw['name']!r})" if isinstance(raw.get("name"), str) else "")
        out.append(_parse_one({**defaults, **raw}, where=label, bad=make_bad(label)))
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{source}: key 'name': duplicate scenario name {dupes[0]!r}; names must be unique")
    if sum(s.baseline for s in out) > 1:
        raise DataError(f"{source}: key 'baseline': more than one scenario has baseline = true")
    for s in out:
        if s.compare_to is not None and s.compare_to not in names:
            raise DataError(
                f"{source}: scenario {s.name!r}, key 'compare_to': no scenario named {s.compare_to!r}"
            )
    return out


def load_scenarios(path) -> list[Scenario]:
    """Read a scenario file (TOML).

    Parameters
    ----------
    path : str or Path
        A TOML file with ``[[scenario]]`` tables and an optional ``[defaults]`` table.

    Returns
    -------
    list of Scenario
        In file order.

    Raises
    ------
    DataError
        If the file is missing or not TOML, or a key is unknown, of the wrong type or
        out of range (negative slots, quantile outside (0, 1), ...); the message names
        the file, the scenario, the key and the expected type.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read scenario file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenarios(data, source=str(path))


def study_scenarios() -> list[Scenario]:
    """The study's scenarios, as in ``scenarios/study.toml``.

    Status quo (billed slots, baseline), fill contracted slots, and net cost lowered by
    1, 5, 10, 15 and 20 thousand pesos (ESC amount raised by that many pesos) with
    contracted slots as capacity, the study's default.
    """
    out = [
        Scenario("status quo", "Today: billed slots as capacity, today's ESC amounts.",
                 baseline=True, capacity="billed"),
        Scenario("fill contracted slots", "No new subsidy; every contracted slot may be filled."),
    ]
    for k in (1, 5, 10, 15, 20):
        out.append(Scenario(f"net cost -{k}K", f"ESC amount raised by {k},000 pesos; contracted slots.",
                            subsidy=1000.0 * k))
    return out


def baseline_of(scenarios) -> Scenario:
    """The scenario flagged ``baseline = true``, else the first one."""
    for s in scenarios:
        if s.baseline:
            return s
    return scenarios[0]
