"""The ingestion ledger: every raw record dropped, merged, corrected or imputed.

A ledger row names the source kind, the file (relative to the manifest folder), the
1-based physical row of the raw file (title rows and the header counted; 0 when the event
is not tied to one row), the school where known, the action and a reason in words.
Reasons never contain learner reference numbers (LRNs) or learner names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from studentflow.schema import LEDGER_ACTIONS, empty_ledger

_LRN_LIKE = re.compile(r"\d{12}")


@dataclass
class Ledger:
    """Collects ledger rows, one event or a vectorised batch at a time."""

    _parts: list[pd.DataFrame] = field(default_factory=list)
    _rows: list[tuple] = field(default_factory=list)
    #: (kind, file) -> number of non-blank raw data rows read (the accounting base).
    rows_read: dict = field(default_factory=dict)
    #: (kind, file) -> what the reader detected: ``sheet``, ``header_row`` (1-based) and
    #: ``columns`` ({canonical name: :class:`~studentflow.ingest.headers.Match`}).
    detected: dict = field(default_factory=dict)

    def add(self, source: str, file: str, row: int, school_id: str, action: str, reason: str):
        """Record one event (see module docstring for the fields)."""
        _check(action, reason)
        self._rows.append((source, file, int(row), school_id or "", action, reason))

    def add_many(self, source, file, rows, school_ids, action: str, reasons):
        """Record a batch of events for one source file (or several: see ``source``).

        Parameters
        ----------
        source, file : str or array-like of str
            Source kind and file name; arrays give one per row (rows of several files).
        rows : array-like of int
            Physical rows (1-based).
        school_ids : array-like of str or a single str
            School of each row ('' where unknown).
        action : str
            One of :data:`studentflow.schema.LEDGER_ACTIONS`.
        reasons : array-like of str or a single str
            Why, in words.
        """
        rows = np.asarray(rows, dtype="int64")
        if rows.size == 0:
            return
        n = rows.size
        sid = pd.Series(school_ids if not isinstance(school_ids, str) else [school_ids] * n)
        why = pd.Series(reasons if not isinstance(reasons, str) else [reasons] * n)
        for r in why.unique():
            _check(action, str(r))
        self._parts.append(
            pd.DataFrame(
                {
                    "source": source,
                    "file": file,
                    "row": rows,
                    "school_id": sid.fillna("").astype(str).to_numpy(),
                    "action": action,
                    "reason": why.astype(str).to_numpy(),
                }
            )
        )

    def extend(self, other: "Ledger") -> None:
        """Append another ledger's events and ``rows_read`` (e.g. one file read elsewhere).

        Events keep their order: this ledger's first, then ``other``'s (its batches, then
        its single events, as :meth:`frame` stacks them).
        """
        self._parts.extend(other._parts)
        if other._rows:
            self._parts.append(pd.DataFrame(other._rows, columns=list(empty_ledger().columns)))
        self.rows_read.update(other.rows_read)
        self.detected.update(other.detected)

    def frame(self) -> pd.DataFrame:
        """All events so far as a canonical ledger table (sorted by source, file, row)."""
        parts = [empty_ledger()] + self._parts
        if self._rows:
            parts.append(pd.DataFrame(self._rows, columns=list(empty_ledger().columns)))
        parts = [p for p in parts if len(p)] or [empty_ledger()]
        out = pd.concat(parts, ignore_index=True)
        out = out.astype({"source": "str", "file": "str", "row": "int64",
                          "school_id": "str", "action": "str", "reason": "str"})
        return out.sort_values(["source", "file", "row"], kind="stable").reset_index(drop=True)


def _check(action: str, reason: str) -> None:
    if action not in LEDGER_ACTIONS:
        raise ValueError(f"ledger action must be one of {LEDGER_ACTIONS}, got {action!r}")
    if _LRN_LIKE.search(reason):
        raise ValueError("a ledger reason must not contain a 12-digit number (possible LRN)")
