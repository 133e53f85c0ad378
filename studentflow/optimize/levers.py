"""The optimizer's levers, read from TOML (``studentflow optimize --levers FILE``).

.. code-block:: toml

    [optimize]
    actions = ["slots", "tier", "catchment", "uniform"]  # add "public_seats" with its cost
    subsidy_step = 1000        # pesos added per subsidy step, per learner per year
    max_subsidy = 20000        # most pesos added to any school's amount
    slot_step = 50             # most ESC slots added at one school in one step
    slot_min = 5               # fewest (unused slots cost nothing; a later subsidy may fill them)
    public_seat_cost = 30000   # pesos per public JHS seat per school year: no default
    public_seat_step = 45      # public JHS seats per step (one classroom)
    confirm = 5                # candidates re-solved per step (0: all)
    refresh = 5                # steps between recomputations of the dual estimates
    max_added_slots = "current"  # most slots added per school: "current" (its slots today),
                               # "seats" or a number; never more than its free JHS seats
    min_lot = 5                # fewest slots added at a school that gets any
    unused_slot_share = 0      # share of the ESC amount paid per added slot left unused (0-1)

Every key is optional. ``public_seats`` needs ``public_seat_cost``: there is no default
cost of a public seat, and asking for the action without one is an error. Slots go only
to schools with free JHS seats (seats minus enrolment); ``max_added_slots``, ``min_lot``
and ``unused_slot_share`` are explained in :mod:`studentflow.optimize.slots`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from studentflow.errors import DataError

__all__ = ["Levers", "load_levers", "ACTION_KINDS"]

ACTION_KINDS = ("slots", "tier", "catchment", "uniform", "public_seats")


@dataclass(frozen=True)
class Levers:
    """What the optimizer may do, and at what granularity (pesos, slots, seats)."""

    actions: tuple = ("slots", "tier", "catchment", "uniform")
    subsidy_step: float = 1000.0
    max_subsidy: float = 20000.0
    slot_step: float = 50.0
    slot_min: float = 5.0
    public_seat_cost: float | None = None
    public_seat_step: float = 45.0
    confirm: int = 5
    refresh: int = 5
    max_added_slots: str | float = "current"
    min_lot: float = 5.0
    unused_slot_share: float = 0.0

    def __post_init__(self):
        unknown = [a for a in self.actions if a not in ACTION_KINDS]
        if unknown:
            raise DataError(f"levers: unknown action {unknown[0]!r}; expected some of {list(ACTION_KINDS)}")
        if "public_seats" in self.actions and self.public_seat_cost is None:
            raise DataError("levers: action 'public_seats' needs public_seat_cost (pesos per public JHS seat "
                            "per school year); there is no default cost, give it in the levers TOML")
        for name in ("subsidy_step", "max_subsidy", "slot_step", "slot_min", "public_seat_step"):
            if not getattr(self, name) > 0:
                raise DataError(f"levers: {name} must be > 0, got {getattr(self, name)!r}")
        if self.public_seat_cost is not None and not self.public_seat_cost >= 0:
            raise DataError(f"levers: public_seat_cost must be >= 0 pesos, got {self.public_seat_cost!r}")
        if self.confirm < 0:
            raise DataError(f"levers: confirm must be >= 0, got {self.confirm!r}")
        if self.refresh < 1:
            raise DataError(f"levers: refresh must be >= 1, got {self.refresh!r}")
        cap = self.max_added_slots
        if not (cap in ("current", "seats") or (not isinstance(cap, (str, bool)) and cap >= 0)):
            raise DataError(f"levers: max_added_slots must be \"current\", \"seats\" or a number of slots "
                            f">= 0, got {cap!r}")
        if not self.min_lot >= 0:
            raise DataError(f"levers: min_lot must be >= 0 slots, got {self.min_lot!r}")
        if not 0 <= self.unused_slot_share <= 1:
            raise DataError(f"levers: unused_slot_share must be between 0 and 1, got {self.unused_slot_share!r}")

    @property
    def max_steps(self) -> int:
        """Subsidy steps a school may receive (max_subsidy / subsidy_step, rounded down)."""
        return int(math.floor(self.max_subsidy / self.subsidy_step + 1e-9))


_TYPES = {"actions": "a list of strings", "subsidy_step": "a number (pesos)", "max_subsidy": "a number (pesos)",
          "slot_step": "a number (slots)", "slot_min": "a number (slots)", "public_seat_cost": "a number (pesos per seat)",
          "public_seat_step": "a number (seats)", "confirm": "a non-negative integer", "refresh": "a positive integer",
          "max_added_slots": '"current", "seats" or a number (slots)', "min_lot": "a number (slots)",
          "unused_slot_share": "a number between 0 and 1"}


def load_levers(path=None) -> Levers:
    """Read the ``[optimize]`` table of a levers TOML file (None: the defaults).

    Raises
    ------
    DataError
        Missing or invalid file, unknown key, wrong type, or ``public_seats`` without
        ``public_seat_cost``; the message names the file and the key.
    """
    if path is None:
        return Levers()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read levers file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: not valid TOML: {exc}") from None
    extra = set(data) - {"optimize"}
    if extra:
        raise DataError(f"{path}: unknown top-level key {sorted(extra)[0]!r}; expected an [optimize] table")
    table = data.get("optimize", {})
    known = {f.name for f in fields(Levers)}
    out = {}
    for key, value in table.items():
        if key not in known:
            raise DataError(f"{path}: [optimize] key {key!r}: unknown; expected one of {sorted(known)}")
        if key == "actions":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            value = tuple(value) if ok else value
        elif key == "max_added_slots" and isinstance(value, str):
            ok = value in ("current", "seats")
        elif key in ("confirm", "refresh"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        if not ok:
            raise DataError(f"{path}: [optimize] key {key!r}: expected {_TYPES[key]}, got {value!r}")
        out[key] = value
    try:
        return Levers(**out)
    except DataError as exc:
        raise DataError(f"{path}: {str(exc).removeprefix('levers: ')}") from None
