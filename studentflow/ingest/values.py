"""Cell-level parsing: school IDs, pesos, counts, regions, offerings, ESC ratings.

All functions are vectorised over pandas Series of text and never raise on a bad cell:
they return a missing value (NaN or '') so the caller can drop or impute the row and say
why in the ledger.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

from studentflow.schema import ESC_RATING_RANK, OFFERINGS

_MISSING = {"", "n/a", "na", "none", "null", "nan", "-", "--", "—", "#n/a", "not available"}


def school_ids(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Normalise DepEd school IDs to 6-digit strings.

    Accepts "136512", " 136512 ", "136512.0" and "36512" (leading zero lost) → "036512".
    Anything else (letters, 4 or fewer or 7 or more digits) is invalid.

    Returns
    -------
    ids : Series of str
        The 6-digit ID, or '' where invalid.
    padded : Series of bool
        The ID was written without its leading zero (a correction worth recording).
    """
    codes, uniques = pd.factorize(raw.astype("str"), use_na_sentinel=False)
    s = pd.Series(uniques, dtype="str").str.strip().str.replace(r"\.0*$", "", regex=True)
    digits = s.str.fullmatch(r"\d{5,6}").fillna(False).astype(bool)
    ids = s.where(digits, "").str.zfill(6).where(digits, "").to_numpy(dtype=object)
    padded = (digits & (s.str.len() == 5)).to_numpy()
    return (pd.Series(ids[codes], index=raw.index, dtype="str"),
            pd.Series(padded[codes], index=raw.index, dtype=bool))


def esc_ids(raw: pd.Series) -> pd.Series:
    """Normalise ESC school IDs (digits only, any length) to text; '' where invalid."""
    s = raw.astype("str").str.strip().str.replace(r"\.0*$", "", regex=True)
    ok = s.str.fullmatch(r"\d{3,10}").fillna(False).astype(bool)
    return s.where(ok, "").astype("str")


def is_missing(raw: pd.Series) -> pd.Series:
    """True where a cell is blank or a missing-value marker ("N/A", "-", ...)."""
    return raw.astype("str").str.strip().str.lower().isin(_MISSING)


def pesos(raw: pd.Series) -> pd.Series:
    """Parse peso amounts ("₱9,000.00", "PHP 9000", "9,000") to float pesos; NaN if not."""
    s = raw.astype("str").str.strip()
    s = s.str.replace(r"(?i)(₱|php|p(?=\s*\d)|,|\s)", "", regex=True)
    s = s.where(~is_missing(raw), "")
    return pd.to_numeric(s.replace("", np.nan), errors="coerce").astype("float64")


def counts(raw: pd.Series) -> pd.Series:
    """Parse counts written as numbers or text ("1,250", "1250.0") to float; NaN if not."""
    s = raw.astype("str").str.strip().str.replace(r"[,\s]", "", regex=True)
    s = s.where(~is_missing(raw), "")
    v = pd.to_numeric(s.replace("", np.nan), errors="coerce").astype("float64")
    bad = v.notna() & ((v < 0) | (v != np.round(v)))
    return v.mask(bad)


def fold(text: str) -> str:
    """Lower case, accents removed (ñ → n), punctuation to spaces, spaces collapsed."""
    t = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    t = re.sub(r"[^a-z0-9]+", " ", t.lower())
    return t.strip()


_REGION_WORDS = {
    "NCR": {"ncr", "national capital region", "metro manila", "region ncr", "national capital region ncr",
            "ncr national capital region", "metropolitan manila"},
    "Region III": {"region iii", "region 3", "iii", "3", "central luzon", "region iii central luzon",
                   "central luzon region iii", "r3", "r iii", "reg iii"},
    "Region IV-A": {"region iv a", "region iva", "region 4a", "region 4 a", "iv a", "iva", "4a", "calabarzon",
                    "region iv a calabarzon", "calabarzon region iv a", "r4a", "r iv a", "reg iv a"},
}
_REGION_LOOKUP = {w: k for k, words in _REGION_WORDS.items() for w in words}


def region(raw: pd.Series) -> pd.Series:
    """Canonical region names ("NCR", "Region III", "Region IV-A"); '' if unrecognised."""
    uniq = pd.Series(raw.astype("str").unique())
    mapped = {u: _REGION_LOOKUP.get(fold(u), "") for u in uniq}
    return raw.astype("str").map(mapped).astype("str")


_OFFERING_LOOKUP = {fold(k): v for k, v in OFFERINGS.items()}


def offering(raw: pd.Series) -> pd.Series:
    """Canonical offering codes from DepEd "Modified COC" text; '' if unrecognised."""
    return raw.astype("str").map(lambda t: _OFFERING_LOOKUP.get(fold(t), "")).astype("str")


def sector(raw: pd.Series) -> pd.Series:
    """'public' / 'private' from DepEd sector text; '' if unrecognised."""
    f = raw.astype("str").map(fold)
    out = pd.Series("", index=raw.index, dtype="str")
    out[f.str.startswith("public")] = "public"
    out[f.str.startswith("private")] = "private"
    return out


_RATING_LOOKUP = {fold(k): v for k, v in ESC_RATING_RANK.items()}


def rating_rank(raw: pd.Series) -> pd.Series:
    """ESC certification text → rank 1 (best) … 8 as float; NaN when missing/unknown."""
    return raw.astype("str").map(lambda t: _RATING_LOOKUP.get(fold(t), np.nan)).astype("float64")



def _arrow_strings(x):
    import pyarrow as pa

    s = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x, dtype=object))
    arr = pa.array(s.astype("str"))
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def isin(values, pool) -> np.ndarray:
    """Boolean mask: each of ``values`` (strings) is in ``pool`` (Arrow hash lookup).

    pandas' Arrow-string ``isin`` builds a Python list of the pool, which is slow for the
    millions of learner keys handled here; ``pyarrow.compute.is_in`` is not.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    a = _arrow_strings(values)
    b = _arrow_strings(pool).cast(a.type) if len(pool) else pa.array([], type=a.type)
    return np.asarray(pc.is_in(a, value_set=b).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
