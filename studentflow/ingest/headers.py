"""Header rows and column matching: which raw header carries which canonical column, and how.

Every expected column is a :class:`Col`: its classic header (the spelling of the real
file the reader was written for, also the reader's internal column name), accepted
aliases, and its *canonical name* (snake_case, documented per kind in docs/sources.md),
which is what a manifest's ``[source.columns]`` table maps to a file's own header text.

Matching order: headers named in the manifest (``how="manifest"``), then exact matches of
the classic header, an alias or the canonical name, case, spacing and punctuation ignored
(``how="alias"``), then a fuzzy match (rapidfuzz ratio >= :data:`FUZZY_COLUMN_SCORE`,
``how="fuzzy"`` with its score) among the headers left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from studentflow.errors import DataError

#: Rows scanned for the header under title banners.
HEADER_SCAN_ROWS = 25
#: Minimum rapidfuzz ratio (0-100) for a fuzzy column-name match.
FUZZY_COLUMN_SCORE = 88.0
_LONG_DIGITS = re.compile(r"\d{10,}")


def snake(text: str) -> str:
    """snake_case of a header ("Seats JHS" → "seats_jhs", "G1 Male" → "g1_male")."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


@dataclass(frozen=True)
class Col:
    """One expected column: classic header, accepted spellings, required, canonical name.

    Attributes
    ----------
    name : str
        The classic header, also the column's name in the reader's frame.
    aliases : tuple of str
        Other spellings met in real files.
    required : bool
        A file without the column is a DataError (optional columns are simply absent).
    key : str
        Canonical name; default :func:`snake` of ``name``.
    """

    name: str
    aliases: tuple[str, ...] = ()
    required: bool = True
    key: str = ""

    @property
    def canon(self) -> str:
        """The canonical name (``[source.columns]`` key, docs/sources.md)."""
        return self.key or snake(self.name)


@dataclass(frozen=True)
class Match:
    """How one canonical column was found: the raw header, ``how`` and the score (0-100)."""

    header: str
    how: str
    score: float

    def __deepcopy__(self, memo):  # immutable: pandas deep-copies a frame's attrs on every new frame
        return self

    def as_dict(self) -> dict:
        return {"header": self.header, "how": self.how, "score": round(float(self.score), 1)}


def label_key(text) -> str:
    """Comparison key of a column label: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower()) if text is not None else ""


def safe_label(text) -> str:
    """A header cell fit for a message: long digit runs (possible LRNs) masked, cut to 60 chars."""
    return _LONG_DIGITS.sub("<number>", str(text))[:60]


def _labels_text(labels) -> str:
    return ", ".join(repr(safe_label(h)) for h in labels) if labels else "no columns"


def check_mapping(mapping: dict | None, cols: list[Col], name: str) -> dict[str, str]:
    """The manifest's ``[source.columns]`` as {Col.name: header}; DataError on an unknown key."""
    if not mapping:
        return {}
    by_canon = {c.canon: c for c in cols}
    bad = [k for k in mapping if k not in by_canon]
    if bad:
        raise DataError(f"{name}: [source.columns] names {bad} but this kind has no such column; "
                        f"canonical names: {sorted(by_canon)}")
    return {by_canon[k].name: str(v) for k, v in mapping.items()}


def find_header(rows: list[list[str]], cols: list[Col], name: str, mapped: dict[str, str] | None = None) -> int:
    """0-based index of the header row among ``rows``: the first row naming most columns.

    ``mapped`` ({Col.name: header text}, from :func:`check_mapping`) adds the manifest's
    header texts to the spellings looked for.

    Raises
    ------
    DataError
        If no row among the first :data:`HEADER_SCAN_ROWS` names at least two expected
        columns (or all of them, when fewer than two are expected).
    """
    mapped = mapped or {}
    keys = [{label_key(c.name), label_key(c.canon), *(label_key(a) for a in c.aliases)}
            | ({label_key(mapped[c.name])} if c.name in mapped else set()) for c in cols]
    best, best_i = 0, -1
    for i, r in enumerate(rows[:HEADER_SCAN_ROWS]):
        cells = {label_key(v) for v in r if str(v).strip()}
        score = sum(1 for k in keys if k & cells)
        if score > best:
            best, best_i = score, i
    if best < min(2, len(cols)) or best_i < 0:
        if not any(any(str(v).strip() for v in r) for r in rows):
            raise DataError(f"{name}: the file is empty")
        raise DataError(
            f"{name}: no header row found in the first {HEADER_SCAN_ROWS} rows; "
            f"expected columns such as {[c.name for c in cols[:4]]} (give header_row and "
            f"[source.columns] in the manifest)"
        )
    return best_i


def match_how(header: list[str], cols: list[Col], name: str, mapped: dict[str, str] | None = None,
              row: int | None = None) -> dict[str, Match]:
    """Map each expected column (by ``Col.name``) to the raw header carrying it, and how.

    Parameters
    ----------
    header : list of str
        The header row's cells.
    cols : list of Col
        Expected columns.
    name : str
        File name for messages.
    mapped : dict, optional
        {Col.name: header text} from the manifest (:func:`check_mapping`); these win.
    row : int, optional
        1-based row of the header, for messages.

    Raises
    ------
    DataError
        A mapped header is absent (the message names the canonical column and the
        closest headers present), or a required column has no match.
    """
    mapped = mapped or {}
    labels = [h for h in header if str(h).strip()]
    by_key: dict[str, str] = {}
    for h in labels:
        by_key.setdefault(label_key(h), h)
    used: set[str] = set()
    found: dict[str, Match] = {}
    for c in cols:
        if c.name not in mapped:
            continue
        want = mapped[c.name]
        hit = next((h for h in labels if str(h).strip() == want.strip()), None) or by_key.get(label_key(want))
        if hit is None or hit in used:
            near = process.extract(want, labels, scorer=fuzz.WRatio, limit=3)
            where = f" (header row {row})" if row else ""
            raise DataError(f"{name}: [source.columns] {c.canon} = {want!r}: no such header{where}; "
                            f"closest: {_labels_text([h for h, _, _ in near])}")
        found[c.name] = Match(hit, "manifest", 100.0)
        used.add(hit)
    for keys_of in ((lambda c: (c.name, *c.aliases)), (lambda c: (c.canon,))):
        for c in cols:
            if c.name in found:
                continue
            for k in map(label_key, keys_of(c)):
                if k in by_key and by_key[k] not in used:
                    found[c.name] = Match(by_key[k], "alias", 100.0)
                    used.add(by_key[k])
                    break
    for c in cols:
        if c.name in found:
            continue
        left = {label_key(h): h for h in labels if h not in used}
        if left:
            hit = process.extractOne(label_key(c.name), list(left), scorer=fuzz.ratio)
            if hit and hit[1] >= FUZZY_COLUMN_SCORE:
                found[c.name] = Match(left[hit[0]], "fuzzy", float(hit[1]))
                used.add(left[hit[0]])
                continue
        if c.required:
            near = process.extract(c.name, labels, scorer=fuzz.WRatio, limit=3)
            raise DataError(f"{name}: no column for {c.name!r}; found {_labels_text([h for h, _, _ in near])} "
                            f"(map it in the manifest: [source.columns] {c.canon} = \"<header>\")")
    return found


def match_columns(header: list[str], cols: list[Col], name: str, mapped: dict[str, str] | None = None) -> dict[str, str]:
    """{Col.name: raw header} (see :func:`match_how`)."""
    return {k: m.header for k, m in match_how(header, cols, name, mapped).items()}


def locate(rows: list[list[str]], cols: list[Col], name: str, *, header_row: int | None = None,
           mapping: dict | None = None) -> tuple[int, dict[str, Match]]:
    """Header row (0-based) and column matches of a file's first rows.

    ``header_row`` (1-based, from the manifest) is taken as given; otherwise the header is
    found under the title rows (:func:`find_header`).
    """
    mapped = check_mapping(mapping, cols, name)
    if header_row is not None:
        h = int(header_row) - 1
        if h >= len(rows):
            raise DataError(f"{name}: header_row = {header_row} but the file has only {len(rows)} row(s) there")
        if not any(str(v).strip() for v in rows[h]):
            raise DataError(f"{name}: header_row = {header_row} is a blank row")
    else:
        h = find_header(rows, cols, name, mapped)
    return h, match_how(rows[h], cols, name, mapped, row=h + 1)
