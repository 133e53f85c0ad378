"""Cell-level parsing: school IDs, pesos, counts, regions, offerings, ESC ratings.

All functions are vectorised over pandas Series of text and never raise on a bad cell:
they return a missing value (NaN or '') so the caller can drop or impute the row and say
why in the ledger.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np
import pandas as pd

from studentflow.schema import ALL_REGIONS, ESC_RATING_RANK, OFFERINGS

_MISSING = {"", "n/a", "na", "none", "null", "nan", "-", "--", "—", "#n/a", "not available"}


def per_distinct(fn):
    """Apply a cell-by-cell parser of a text Series once per distinct text.

    The parsers below treat every cell on its own (their first step is ``astype("str")``),
    so parsing each distinct text once and spreading the results back gives the same
    Series; a national file repeats few distinct counts, amounts and labels in 59,000
    rows. A column of mostly distinct texts is parsed as it is.
    """

    @functools.wraps(fn)
    def wrapper(raw: pd.Series) -> pd.Series:
        codes, uniques = pd.factorize(raw.astype("str"), use_na_sentinel=False)
        if 4 * len(uniques) > len(codes):
            return fn(raw)
        done = fn(pd.Series(np.asarray(uniques, dtype=object), dtype="str", name=raw.name))
        return pd.Series(done.to_numpy()[codes], index=raw.index, dtype=done.dtype, name=done.name)

    return wrapper



def school_ids(raw: pd.Series, extra=frozenset()) -> tuple[pd.Series, pd.Series]:
    """Normalise DepEd school IDs to 6-digit strings.

    Accepts "136512", " 136512 ", "136512.0" and "36512" (leading zero lost) → "036512".
    Anything else (letters, 4 or fewer or 7 or more digits) is invalid, except the IDs of
    ``extra``: old IDs a ``school_id_crosswalk`` names in another form (DepEd's 7-digit
    ``1XXXXXX`` twins), kept as written (digits, ".0" removed) so that they can be remapped.

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
    ids = s.where(digits, "").str.zfill(6).where(digits, "")
    if extra:
        named = ~digits & s.isin(extra)
        ids = ids.where(~named, s)
    ids = ids.to_numpy(dtype=object)
    padded = (digits & (s.str.len() == 5)).to_numpy()
    return (pd.Series(ids[codes], index=raw.index, dtype="str"),
            pd.Series(padded[codes], index=raw.index, dtype=bool))


def esc_ids(raw: pd.Series) -> pd.Series:
    """Normalise ESC school IDs (digits only, any length) to text; '' where invalid."""
    s = raw.astype("str").str.strip().str.replace(r"\.0*$", "", regex=True)
    ok = s.str.fullmatch(r"\d{3,10}").fillna(False).astype(bool)
    return s.where(ok, "").astype("str")


@per_distinct
def is_missing(raw: pd.Series) -> pd.Series:
    """True where a cell is blank or a missing-value marker ("N/A", "-", ...)."""
    return raw.astype("str").str.strip().str.lower().isin(_MISSING)


@per_distinct
def pesos(raw: pd.Series) -> pd.Series:
    """Parse peso amounts ("₱9,000.00", "PHP 9000", "9,000") to float pesos; NaN if not."""
    s = raw.astype("str").str.strip()
    s = s.str.replace(r"(?i)(₱|php|p(?=\s*\d)|,|\s)", "", regex=True)
    s = s.where(~is_missing(raw), "")
    return pd.to_numeric(s.replace("", np.nan), errors="coerce").astype("float64")


@per_distinct
def grade_number(raw: pd.Series) -> pd.Series:
    """The first run of digits of each cell as a number ("Grade 7" → 7); NaN where none.

    Parsed once per distinct text (:func:`per_distinct`): pandas' ``str.extract`` runs
    Python's regex cell by cell (0.5 s of held GIL over the national billing files).
    """
    return pd.to_numeric(raw.astype("str").str.extract(r"(\d+)")[0], errors="coerce")


@per_distinct
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


#: Numbered regions: (roman numeral forms, arabic forms, regional names).
_NUMBERED = {
    "Region I": (("i",), ("1",), ("ilocos region", "ilocos")),
    "Region II": (("ii",), ("2",), ("cagayan valley",)),
    "Region III": (("iii",), ("3",), ("central luzon",)),
    "Region IV-A": (("iv a", "iva"), ("4a", "4 a"), ("calabarzon",)),
    "MIMAROPA": (("iv b", "ivb"), ("4b", "4 b"), ("mimaropa", "mimaropa region", "southwestern tagalog region")),
    "Region V": (("v",), ("5",), ("bicol region", "bicol")),
    "Region VI": (("vi",), ("6",), ("western visayas",)),
    "Region VII": (("vii",), ("7",), ("central visayas",)),
    "Region VIII": (("viii",), ("8",), ("eastern visayas",)),
    "Region IX": (("ix",), ("9",), ("zamboanga peninsula",)),
    "Region X": (("x",), ("10",), ("northern mindanao",)),
    "Region XI": (("xi",), ("11",), ("davao region",)),
    "Region XII": (("xii",), ("12",), ("soccsksargen", "soccsargen")),
    "Region XIII": (("xiii",), ("13",), ("caraga", "caraga region")),
    "NIR": (("xviii",), ("18",), ("nir", "negros island region")),
}
#: Regions known by abbreviation: (abbreviations, full names).
_NAMED = {
    "NCR": (("ncr",), ("national capital region", "metro manila", "metropolitan manila")),
    "CAR": (("car",), ("cordillera administrative region", "cordillera")),
    "BARMM": (("barmm", "armm"), ("bangsamoro autonomous region in muslim mindanao",
                                  "autonomous region in muslim mindanao", "bangsamoro")),
}


def _region_words() -> dict[str, set[str]]:
    """Folded spellings of every region of :data:`ALL_REGIONS` → canonical name.

    Numbered regions: "Region VII", "Region 7", "VII", "7", "R7", "R VII", "Reg VII",
    "Central Visayas", "Region VII - Central Visayas", "Central Visayas (Region VII)".
    Abbreviated ones: "CAR", "Region CAR", "Cordillera Administrative Region",
    "CAR - Cordillera Administrative Region" and the reverse.
    """
    words: dict[str, set[str]] = {}
    for canon, (romans, arabic, names) in _NUMBERED.items():
        w = words.setdefault(canon, {fold(canon)})
        for num in (*romans, *arabic):
            w |= {num, f"region {num}", f"r{num}", f"r {num}", f"reg {num}"}
        for name in names:
            w.add(name)
            for num in (*romans, *arabic):
                w |= {f"region {num} {name}", f"{name} region {num}", f"{name} {num}"}
    for canon, (abbrevs, names) in _NAMED.items():
        w = words.setdefault(canon, {fold(canon)})
        for ab in abbrevs:
            w |= {ab, f"region {ab}"}
            for name in names:
                w |= {name, f"{ab} {name}", f"{name} {ab}"}
    return words


_REGION_WORDS = _region_words()
_REGION_LOOKUP = {w: k for k, words in _REGION_WORDS.items() for w in words}
assert set(_REGION_WORDS) == set(ALL_REGIONS), "every canonical region needs its spellings"
assert len(_REGION_LOOKUP) == sum(map(len, _REGION_WORDS.values())), "a spelling names two regions"


def region(raw: pd.Series) -> pd.Series:
    """Canonical region names (:data:`studentflow.schema.ALL_REGIONS`); '' if unrecognised.

    Accepts the common written forms of every PSGC region, case and punctuation aside:
    "REGION VII", "Region 7", "Central Visayas", "CAR", "Cordillera Administrative Region",
    "Region IV-B"/"MIMAROPA", "Negros Island Region", "Caraga"/"Region XIII", "BARMM".
    "Region IV" alone (the former Southern Tagalog, now IV-A and IV-B) is unrecognised.
    """
    uniq = pd.Series(raw.astype("str").unique())
    mapped = {u: _REGION_LOOKUP.get(fold(u), "") for u in uniq}
    return raw.astype("str").map(mapped).astype("str")


_OFFERING_LOOKUP = {fold(k): v for k, v in OFFERINGS.items()}


@per_distinct
def offering(raw: pd.Series) -> pd.Series:
    """Canonical offering codes from DepEd "Modified COC" text; '' if unrecognised."""
    return raw.astype("str").map(lambda t: _OFFERING_LOOKUP.get(fold(t), "")).astype("str")


@per_distinct
def sector(raw: pd.Series) -> pd.Series:
    """'public' / 'private' from DepEd sector text; '' if unrecognised."""
    f = raw.astype("str").map(fold)
    out = pd.Series("", index=raw.index, dtype="str")
    out[f.str.startswith("public")] = "public"
    out[f.str.startswith("private")] = "private"
    return out


_RATING_LOOKUP = {fold(k): v for k, v in ESC_RATING_RANK.items()}


@per_distinct
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


def school_str(ids: np.ndarray) -> np.ndarray:
    """int school IDs → 6-digit strings ('' for -1; a 7-digit old ID as written), as an object array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = np.asarray(ids)
    if not ids.size:
        return np.empty(0, dtype=object)
    if ids.dtype.kind in "iu":  # Arrow's integer text, left-padded: 4x numpy's zfill of U7 text
        text = pc.utf8_lpad(pa.array(ids.astype(np.int64)).cast(pa.string()), 6, "0")
        out = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
    else:
        out = np.char.zfill(ids.astype("U7"), 6).astype(object)  # U7: a crosswalk's 7-digit old IDs
    out[ids < 0] = ""
    return out


def school_array(ids: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """int school IDs → a ``str`` array of 6-digit IDs, as ``pd.array(school_str(ids), dtype="str")``;
    IDs all non-negative go from Arrow's text to the array directly (no Python string per ID)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = np.asarray(ids)
    if ids.size and ids.dtype.kind in "iu" and ids.min() >= 0:
        return pd.array(pc.utf8_lpad(pa.array(ids.astype(np.int64)).cast(pa.string()), 6, "0"), dtype="str")
    return pd.array(school_str(ids), dtype="str")
