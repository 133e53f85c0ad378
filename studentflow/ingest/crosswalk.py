"""School-ID crosswalk: DepEd re-issues a school ID when a school is reclassified, so older
files (Grade 6 records, billing lists, coordinate lists) carry old IDs.

A ``school_id_crosswalk`` source lists remaps: canonical columns ``old_id``, ``new_id``
and optionally ``school_year``. DepEd's own "School ID Mapping" file is wide
(``old_school_id``, ``school_id_2024``, ``BEIS School ID``, ``sy_2005`` … ``sy_2024``): its
manifest entry maps the two IDs with ``[source.columns]``::

    [[source]]
    kind = "school_id_crosswalk"
    path = "school_id_mapping.xlsx"
    [source.columns]
    old_id = "old_school_id"
    new_id = "school_id_2024"

Rules. IDs are normalised as everywhere (``136512.0``, a lost leading zero); an old ID
may also be DepEd's 7-digit ``1XXXXXX`` twin of a school ID. Every ID the crosswalk
names is remapped *before* the readers would drop it as invalid: the loader gives each
source the crosswalk's 7-digit old IDs (:attr:`Source.old_ids`, :meth:`Crosswalk.prepare`),
which the readers keep so that the remap below replaces them. Chains are
followed (A→B and B→C give A→C). An old ID mapped to two different new IDs, or a cycle
(A→B→A), is a :class:`~studentflow.errors.DataError` naming the rows. The resolved map is
applied to every DepEd school-ID column of every other source right after it is read,
before any join (learner-level files on their integer arrays, with one lookup table);
each value replaced is a ledger row (action ``remapped``) naming the old and new ID.
The keys of a road-distance matrix index are remapped too
(:meth:`Crosswalk.remap_matrix_index`), so a matrix computed under old IDs still joins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.errors import DataError
from studentflow.ingest import values as V
from studentflow.ingest.columns import Col
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import Source
from studentflow.ingest.readbase import dedupe, read

CROSSWALK_COLS = [
    Col("Old School ID", ("old_school_id", "old id", "Previous School ID"), key="old_id"),
    Col("New School ID", ("new_school_id", "new id", "Current School ID"), key="new_id"),
    Col("School Year", ("sy", "school_year", "SY Effective"), required=False, key="school_year"),
]
#: DepEd school-ID columns of each kind's reader frame (school-level kinds) ...
FRAME_ID_COLUMNS = {"enrollment": ("school_id",), "coordinates": ("school_id",), "seats": ("school_id",),
                    "private_seats": ("school_id",), "esc_slots": ("school_id",)}
#: ... and of each learner-level kind's integer arrays (:class:`~.learners.LearnerPart`).
ARRAY_ID_COLUMNS = {"transitions": ("origin", "destination"), "esc_beneficiaries": ("deped",)}
_WHAT = {"origin": "Grade 6 school", "destination": "Grade 7 school", "deped": "DepEd school",
         "school_id": "school"}


def read_school_id_crosswalk(src: Source, ledger: Ledger) -> pd.DataFrame:
    """Remap rows: old_id (6 digits, or a 7-digit twin), new_id (6-digit), school_year
    ('' unknown), _row.

    Rows with an invalid ID on either side (old: not 5 to 7 digits; new: not a 6-digit
    DepEd school ID) are dropped, rows whose two IDs are equal
    (nothing to remap) dropped, repeated old/new pairs merged; all in the ledger.
    """
    df = read(src, CROSSWALK_COLS, ledger)
    raw_old = df["Old School ID"].astype("str").str.strip().str.replace(r"\.0*$", "", regex=True)
    old, _ = V.school_ids(df["Old School ID"], frozenset(raw_old[raw_old.str.fullmatch(r"\d{7}").fillna(False)]))
    new, _ = V.school_ids(df["New School ID"])
    year = df["School Year"].str.strip() if "School Year" in df else pd.Series("", index=df.index, dtype="str")
    out = pd.DataFrame({"old_id": old, "new_id": new, "school_year": year, "_row": df["_row"]})
    bad = (old == "") | (new == "")
    ledger.add_many(src.kind, src.file, out.loc[bad, "_row"], "", "dropped",
                    "invalid old or new school ID (old: not 5 to 7 digits; new: not a 6-digit DepEd school ID)")
    out = out[~bad]
    same = out["old_id"] == out["new_id"]
    ledger.add_many(src.kind, src.file, out.loc[same, "_row"], out.loc[same, "new_id"], "dropped",
                    "old and new school ID are the same: nothing to remap")
    return dedupe(out[~same], ["old_id", "new_id"], src, ledger, "old/new school ID pair")


@dataclass(frozen=True)
class Crosswalk:
    """Resolved remaps: old ID → final new ID (chains followed), and where each was read.

    Attributes
    ----------
    final : dict of str to str
        Old ID (6 digits, or a 7-digit twin) → the 6-digit ID it ends at.
    via : dict of str to str
        Old ID → "file row N" (its own remap row), for ledger reasons.
    """

    final: dict = field(default_factory=dict)
    via: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.final)

    def __len__(self) -> int:
        return len(self.final)

    @property
    def long_ids(self) -> frozenset:
        """Old IDs outside the 6-digit form (7-digit twins): readers must keep them."""
        return frozenset(k for k in self.final if len(k) != 6)

    def prepare(self, sources: list[Source]) -> list[Source]:
        """``sources`` with :attr:`Source.old_ids` set (crosswalk sources as they are), so
        that their readers keep the 7-digit old IDs for the remap instead of dropping them."""
        long = self.long_ids
        if not long:
            return list(sources)
        return [s if s.kind == "school_id_crosswalk" else replace(s, old_ids=long) for s in sources]

    def reason(self, old: str) -> str:
        """Ledger reason of replacing ``old``: both IDs and the crosswalk row."""
        return f"school ID {old} replaced by {self.final[old]} (re-issued; {self.via[old]})"

    def table(self) -> np.ndarray:
        """Lookup table over every 6-digit ID (and the 7-digit old IDs): ``table[id]`` is the
        final ID (int32)."""
        old = np.fromiter((int(k) for k in self.final), dtype=np.int64, count=len(self.final))
        t = np.arange(max(10**6, int(old.max(initial=0)) + 1), dtype=np.int32)
        if self.final:
            t[old] = np.fromiter((int(v) for v in self.final.values()), dtype=np.int64, count=len(self.final))
        return t

    def remap_frame(self, src: Source, df: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
        """``df`` (a reader's frame of ``src``) with its school-ID columns remapped; ledger rows."""
        out = df
        for col in FRAME_ID_COLUMNS.get(src.kind, ()):
            ids = out[col]
            hit = V.isin(ids, pd.Index(list(self.final)))
            if not hit.any():
                continue
            old = ids[hit]
            ledger.add_many(src.kind, src.file, out.loc[hit, "_row"], old.map(self.final), "remapped",
                            old.map(self.reason))
            out = out.assign(**{col: ids.where(~hit, ids.map(self.final)).astype("str")})
        return out

    def remap_part(self, part, ledger: Ledger, table: np.ndarray):
        """A :class:`~studentflow.ingest.learners.LearnerPart` with its school IDs remapped
        through ``table`` (:meth:`table`); one ledger row per value replaced."""
        arrays = dict(part.arrays)
        for key in ARRAY_ID_COLUMNS.get(part.kind, ()):
            ids = arrays[key]
            ok = ids >= 0
            new = ids.copy()
            new[ok] = table[ids[ok]]
            changed = new != ids
            if changed.any():
                old = V.school_str(ids[changed])
                reasons = pd.Series(old).map(lambda o: f"{_WHAT[key]}: " + self.reason(o)).to_numpy()
                ledger.add_many(part.kind, part.file, arrays["row"][changed], V.school_str(new[changed]),
                                "remapped", reasons)
                arrays[key] = new
        return replace(part, arrays=arrays)

    def remap_matrix_index(self, src: Source, ledger: Ledger) -> dict | None:
        """The road-distance matrix index of ``src`` (``{"rows": {school_id: [row, ...]},
        "cols": ...}``) with re-issued IDs replaced by their final ID, positions of an old
        and a new key merged (the matrix reader takes the minimum over a school's
        positions); one ``remapped`` ledger row per key replaced (row 0: JSON has no rows).
        None when no key needs replacing (the reader then opens the file itself)."""
        try:
            index = json.loads(Path(src.index).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None  # the matrix reader raises the DataError naming the file
        if not isinstance(index, dict):
            return None
        out, hits = dict(index), []
        for key in ("rows", "cols"):
            mapping = index.get(key)
            if not isinstance(mapping, dict):
                continue
            keys = pd.Series(list(mapping), dtype="str")
            ids = V.school_ids(keys, self.long_ids)[0].where(lambda s: s != "", keys)  # "36512" → "036512"
            new: dict = {}
            for sid, norm, pos in zip(keys, ids, mapping.values()):
                final = self.final.get(norm)
                if final is not None:
                    hits.append((key, norm, final))
                target = final or sid
                new[target] = list(new.get(target, [])) + (pos if isinstance(pos, list) else [pos])
            out[key] = new
        if not hits:
            return None
        ledger.add_many(src.kind, Path(src.index).name, np.zeros(len(hits), np.int64), [h[2] for h in hits],
                        "remapped", [f"matrix {k} key: " + self.reason(o) for k, o, _ in hits])
        out["_source"] = str(src.index)
        return out

    def ledger_ids(self, table: pd.DataFrame) -> pd.DataFrame:
        """Ledger rows name each school by its final ID (remapped rows already do)."""
        if not self.final or not len(table):
            return table
        sid = table["school_id"]
        return table.assign(school_id=sid.map(self.final).fillna(sid).astype("str"))


def build_crosswalk(parts: list[tuple[Source, pd.DataFrame]]) -> Crosswalk:
    """Resolve the remap rows of every crosswalk source (manifest order) into a :class:`Crosswalk`.

    Raises
    ------
    DataError
        An old ID with two different new IDs (one-to-many), or a cycle; the message names
        the files and rows.
    """
    if not parts:
        return Crosswalk()
    df = pd.concat([d.assign(_file=s.file) for s, d in parts], ignore_index=True)
    df = df.drop_duplicates(["old_id", "new_id"], keep="first")
    where = {(o, n): f"{f} row {r}" for o, n, f, r in zip(df["old_id"], df["new_id"], df["_file"], df["_row"])}
    many = df[df.duplicated("old_id", keep=False)]
    if len(many):
        ex = []
        for old, g in list(many.groupby("old_id", sort=True))[:3]:
            ex.append(f"{old} → " + ", ".join(f"{n} ({where[(old, n)]})" for n in g["new_id"]))
        raise DataError(f"school_id_crosswalk: {many['old_id'].nunique()} old school ID(s) remapped to more than "
                        f"one new ID (one-to-many), e.g. {'; '.join(ex)}")
    step = dict(zip(df["old_id"], df["new_id"]))
    final: dict[str, str] = {}
    for start in step:
        path, cur = [], start
        while cur in step and cur not in final:
            if cur in path:
                cyc = path[path.index(cur):]
                rows = ", ".join(f"{a} → {step[a]} ({where[(a, step[a])]})" for a in cyc)
                raise DataError(f"school_id_crosswalk: remaps form a cycle: {rows}")
            path.append(cur)
            cur = step[cur]
        end = final.get(cur, cur)
        for p in path:
            final[p] = end
    via = {o: where[(o, step[o])] + (f", then {len(_chain(o, step)) - 1} more remap(s)" if step[o] != final[o] else "")
           for o in final}
    return Crosswalk(final=final, via=via)


def _chain(old: str, step: dict) -> list[str]:
    out = [old]
    while out[-1] in step:
        out.append(step[out[-1]])
    return out[:-1]
