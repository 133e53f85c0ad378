"""Transitions CSV files streamed block by block with pyarrow, straight to integer arrays.

The fast path of :func:`studentflow.ingest.learners.read_learner_part` for ``transitions``:
the file is read in blocks (``pyarrow.csv.open_csv``, only the three needed columns, as
text) and each block is reduced at once: cells written plainly (a 12-digit LRN, a 6-digit
school ID) are cast to integers in Arrow; the few others go through the very functions the
string reader uses (:func:`studentflow.ingest.values.school_ids`,
:func:`studentflow.ingest.flows._lrn`), so values, drops and ledger rows are exactly those
of :func:`~studentflow.ingest.readers.read_transitions` followed by compaction. Anything
that reader would treat specially (not a CSV, a header problem, ragged or blank lines, a
duplicate header label) returns None and the exact path reads the file instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.errors import DataError
from studentflow.ingest import values as V
from studentflow.ingest.columns import HEADER_SCAN_ROWS, _csv_head, locate
from studentflow.ingest.flows import _lrn
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import Source
from studentflow.ingest.readers import BAD_G6, BAD_G7, TRANSITION_COLS, note_read

#: Bytes per streamed block (uncompressed CSV text).
BLOCK_BYTES = 1 << 22


def fast_transitions(src: Source):
    """``(arrays, ledger)`` of a transitions CSV read block by block, or None.

    Returns
    -------
    tuple or None
        ``arrays``: ``lrn`` (int64, -1 blank/malformed), ``origin``, ``destination``
        (int32 school IDs), ``row`` (int64) of the rows kept; ``ledger``: rows read, the
        header correction and the invalid-ID drops. None: read the file the exact way.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pacsv

    path = Path(src.path)
    if not path.name.lower().endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        return None
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return None
        head = _csv_head(path, src.file, max(HEADER_SCAN_ROWS, int(src.header_row or 0)))
        h, how = locate(head, TRANSITION_COLS, src.file, header_row=src.header_row, mapping=src.mapping)
        found = {k: m.header for k, m in how.items()}
    except DataError:  # the exact path raises it again, with the same message
        return None
    if len(set(head[h])) != len(head[h]):
        return None
    raw = {c: found[c.name] for c in TRANSITION_COLS}
    lrn_col, g7_col, g6_col = (raw[c] for c in TRANSITION_COLS)
    out: dict[str, list] = {"lrn": [], "origin": [], "destination": [], "row": []}
    bad_rows, bad_sid, bad_why = [], [], []
    n = 0
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(skip_rows=h, block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(raw.values()), column_types={c: pa.string() for c in raw.values()},
                strings_can_be_null=False, quoted_strings_can_be_null=False))
        for batch in reader:
            cols = {c: batch.column(batch.schema.get_field_index(c)) for c in (lrn_col, g7_col, g6_col)}
            lrn, clean_l = _ints(cols[lrn_col], 12, pc)
            d, clean_d = _ints(cols[g7_col], 6, pc)
            o, clean_o = _ints(cols[g6_col], 6, pc)
            odd = ~(clean_l | clean_d | clean_o)
            if odd.any() and _any_blank([cols[c] for c in (lrn_col, g7_col, g6_col)], odd):
                return None  # a row blank in every needed column: the exact reader's case
            _fill_school(o, cols[g6_col], clean_o, src.old_ids)
            _fill_school(d, cols[g7_col], clean_d, src.old_ids)
            _fill_lrn(lrn, cols[lrn_col], clean_l)
            rows = np.arange(n + h + 2, n + h + 2 + batch.num_rows, dtype=np.int64)
            n += batch.num_rows
            bad = (o < 0) | (d < 0)
            if bad.any():
                bad_rows.append(rows[bad])
                bad_sid.append(np.where(d[bad] >= 0, d[bad], o[bad]))
                bad_why.append(np.where(o[bad] < 0, BAD_G6, BAD_G7))
            keep = ~bad
            for k, v in (("lrn", lrn), ("origin", o), ("destination", d), ("row", rows)):
                out[k].append(v[keep])
    except Exception:  # ragged lines, decoding trouble, a header pyarrow reads differently, ...
        return None  # ... the exact path reads the file (or raises its DataError)
    ledger = Ledger()
    note_read(src, n, h + 1, ledger, columns={c.canon: how[c.name] for c in TRANSITION_COLS if c.name in how})
    if bad_rows:
        ledger.add_many(src.kind, src.file, np.concatenate(bad_rows), V.school_str(np.concatenate(bad_sid)),
                        "dropped", np.concatenate(bad_why))
    dtypes = {"lrn": np.int64, "origin": np.int32, "destination": np.int32, "row": np.int64}
    arrays = {k: (np.concatenate(v) if v else np.empty(0)).astype(dtypes[k], copy=False) for k, v in out.items()}
    return arrays, ledger


def _ints(arr, digits: int, pc) -> tuple[np.ndarray, np.ndarray]:
    """Cells of exactly ``digits`` ASCII digits cast to int64 (others -1), and that mask.

    ``digits`` bytes, every one an ASCII decimal digit: what the regex ``^[0-9]{digits}$``
    matches, about 5x faster (no regex engine)."""
    clean = np.asarray(pc.and_(pc.equal(pc.binary_length(arr), digits), pc.ascii_is_decimal(arr))
                       .to_numpy(zero_copy_only=False), dtype=bool)
    out = np.full(len(arr), -1, dtype=np.int64)
    if clean.any():
        out[clean] = np.asarray(pc.cast(pc.filter(arr, clean), "int64").to_numpy(), dtype=np.int64)
    return out, clean


def _text(arr, mask: np.ndarray) -> pd.Series:
    import pyarrow.compute as pc

    return pd.Series(pc.filter(arr, mask).to_pylist(), dtype="str")


#: School IDs of the cells not written plainly, by (crosswalk old IDs, text): a file
#: repeats a few such texts ('', '0', '9999999') block after block, and
#: :func:`values.school_ids` costs ~4 ms of held GIL per call however few its cells.
_SCHOOL_MEMO: dict = {}
#: At most this many texts are remembered (a file of IDs all written oddly: about the schools).
MEMO_LIMIT = 200_000


def _fill_school(ids: np.ndarray, arr, clean: np.ndarray, old_ids=frozenset()) -> None:
    """School IDs of the cells not written plainly, by :func:`values.school_ids` (-1 invalid;
    a crosswalk's 7-digit ``old_ids`` kept), each distinct text parsed once (:data:`_SCHOOL_MEMO`)."""
    import pyarrow.compute as pc

    other = ~clean
    if other.any():
        texts = pc.filter(arr, other).to_pylist()
        memo = _SCHOOL_MEMO.setdefault(old_ids, {})
        got = {t: memo.get(t) for t in texts}
        new = [t for t, v in got.items() if v is None]
        if new:
            s, _ = V.school_ids(pd.Series(new, dtype="str"), old_ids)
            ok = (s != "").to_numpy()
            vals = np.full(ok.size, -1, dtype=np.int64)
            vals[ok] = s[ok].astype("int64").to_numpy()
            got.update(zip(new, vals.tolist()))
            if len(memo) < MEMO_LIMIT:
                memo.update(zip(new, vals.tolist()))
        ids[other] = [got[t] for t in texts]


def _fill_lrn(lrn: np.ndarray, arr, clean: np.ndarray) -> None:
    """LRNs of the cells not written plainly: normalised as :func:`flows._lrn`, -1 unless 12 digits."""
    other = ~clean
    if other.any():
        norm = _lrn(_text(arr, other))
        ok = norm.str.fullmatch(r"\d{12}").fillna(False).astype(bool).to_numpy()
        vals = np.full(ok.size, -1, dtype=np.int64)
        vals[ok] = norm[ok].astype("int64").to_numpy()
        lrn[other] = vals


def _any_blank(arrs, candidates: np.ndarray) -> bool:
    """Is any candidate row blank (after stripping) in every one of ``arrs``?"""
    blank = candidates.copy()
    for a in arrs:
        blank[blank] = (_text(a, blank).str.strip() == "").to_numpy()
        if not blank.any():
            return False
    return bool(blank.any())
