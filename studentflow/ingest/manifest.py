"""The manifest: which raw file holds which source kind (``manifest.toml``).

```toml
[[source]]
kind = "enrollment"
path = "enrollment_sy2023-2024.xlsx"   # relative to the manifest's folder
sheet = "DATA"                         # optional, spreadsheets only
school_year = "2023-2024"              # optional: the source's school year (see .years)
header_row = 4                         # optional: 1-based row of the header (else found)
index = "road_matrix_index.json"       # road_distances only
[source.columns]                       # optional: canonical name = the file's header
school_id = "LIS SCHOOL ID"
```

The canonical column names of each kind are listed in docs/sources.md.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from studentflow.errors import DataError

#: Source kinds the ingestion layer reads (SOURCES.md).
KINDS: tuple[str, ...] = (
    "enrollment", "coordinates", "seats", "private_seats", "transitions", "esc_beneficiaries",
    "esc_slots", "tuition", "esc_rating", "lgu_income", "subsidy_rates", "road_distances",
    "road_network", "school_id_crosswalk",
)
#: Kinds a Bundle cannot be built without.
REQUIRED_KINDS: tuple[str, ...] = ("enrollment", "coordinates", "transitions")


@dataclass(frozen=True)
class Source:
    """One ``[[source]]`` entry: kind, resolved path, and the name used in messages."""

    kind: str
    path: Path
    file: str
    sheet: str | None = None
    school_year: str | None = None
    index: Path | None = None
    #: ``[source.columns]``: (canonical name, header text) pairs, in manifest order.
    columns: tuple[tuple[str, str], ...] = ()
    #: 1-based row of the header (spreadsheet row / CSV line); None: found under the titles.
    header_row: int | None = None
    #: Old school IDs outside the 6-digit form (DepEd's 7-digit ``1XXXXXX`` twins) that a
    #: ``school_id_crosswalk`` names: the readers keep them so that they are remapped, not
    #: dropped as invalid (set by the loader once the crosswalk is read).
    old_ids: frozenset = frozenset()

    @property
    def mapping(self) -> dict[str, str]:
        """``[source.columns]`` as a dict (canonical name → header text)."""
        return dict(self.columns)


_YEAR = re.compile(r"(?:SY\s*)?(\d{4})\s*[-–/]\s*(\d{4})", re.IGNORECASE)


def school_year(value, where: str) -> str | None:
    """A manifest's ``school_year`` as ``"YYYY-YYYY"`` ("SY 2023-2024", "2023–2024" accepted).

    Raises
    ------
    DataError
        Not two consecutive calendar years.
    """
    if value is None:
        return None
    m = _YEAR.fullmatch(str(value).strip())
    if not m or int(m.group(2)) != int(m.group(1)) + 1:
        raise DataError(f"{where}: school_year must be two consecutive years like \"2023-2024\", got {value!r}")
    return f"{m.group(1)}-{m.group(2)}"


def _inside(folder: Path, rel: str, where: str) -> Path:
    p = (folder / rel).resolve()
    if not p.is_relative_to(folder):
        raise DataError(f"{where}: path {rel!r} leads outside the manifest's folder {folder}")
    return p


def manifest_path(manifest) -> Path:
    """``manifest`` (a ``manifest.toml`` or the folder holding one) as a file path.

    Raises
    ------
    DataError
        Neither the file nor the folder's ``manifest.toml`` exists.
    """
    path = Path(manifest)
    if path.is_dir():
        path = path / "manifest.toml"
    if not path.is_file():
        raise DataError(f"{path}: manifest not found (give a manifest.toml or the folder holding it)")
    return path


def _options(e: dict, where: str) -> tuple[tuple[tuple[str, str], ...], int | None]:
    """``[source.columns]`` and ``header_row`` of one entry, checked."""
    cols = e.get("columns", {})
    if not isinstance(cols, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                             for k, v in cols.items()):
        raise DataError(f"{where}: [source.columns] must map canonical column names to header texts "
                        f"(strings), e.g. school_id = \"LIS SCHOOL ID\"")
    h = e.get("header_row")
    if h is not None and (isinstance(h, bool) or not isinstance(h, int) or h < 1):
        raise DataError(f"{where}: header_row must be a whole number >= 1 (the header's spreadsheet row "
                        f"or CSV line), got {h!r}")
    return tuple(cols.items()), h


def read_manifest(manifest: Path, *, problems: list | None = None) -> list[Source]:
    """Parse and check a ``manifest.toml``.

    Parameters
    ----------
    manifest : Path
        The manifest file.
    problems : list, optional
        Partial mode (the dry run, :func:`studentflow.ingest.check.check_manifest`): a bad
        ``[[source]]`` entry or a missing required kind is appended here as a message
        and skipped instead of raised; the sources that are fine are returned.

    Raises
    ------
    DataError
        Unreadable TOML, no ``[[source]]`` entries, an unknown kind, a missing ``path``,
        a path outside the manifest's folder, a file that does not exist, or a required
        kind (:data:`REQUIRED_KINDS`) absent.
    """
    manifest = Path(manifest)
    name = manifest.name
    if not manifest.is_file():
        raise DataError(f"{manifest}: manifest file not found")
    try:
        doc = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: not valid TOML ({exc})") from None
    entries = doc.get("source")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{name}: no [[source]] entries")
    folder = manifest.parent.resolve()
    out: list[Source] = []
    for i, e in enumerate(entries, start=1):
        try:
            out.append(_entry(e, f"{name}: [[source]] #{i}", folder, name))
        except DataError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
    have = {s.kind for s in out}
    missing = [k for k in REQUIRED_KINDS if k not in have]
    if missing:
        msg = f"{name}: no source of kind {missing} (needed by later stages)"
        if problems is None:
            raise DataError(msg)
        problems.append(msg)
    return out


def _entry(e, where: str, folder: Path, name: str) -> Source:
    """One ``[[source]]`` entry → :class:`Source` (DataError naming the entry if bad)."""
    if not isinstance(e, dict):
        raise DataError(f"{where}: not a table")
    kind = e.get("kind")
    if kind not in KINDS:
        raise DataError(f"{where}: unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    rel = e.get("path")
    if not isinstance(rel, str) or not rel.strip():
        raise DataError(f"{where} ({kind}): missing 'path'")
    path = _inside(folder, rel, where)
    if not path.is_file():
        raise DataError(f"{rel}: file not found (named in {name}, kind {kind!r})")
    index = None
    if kind == "road_distances":
        idx = e.get("index") or (path.with_name(path.stem + "_index.json").name)
        index = _inside(folder, str(Path(rel).parent / idx) if "index" not in e else idx, where)
        if not index.is_file():
            raise DataError(f"{idx}: road-distance index file not found (named in {name})")
    columns, header_row = _options(e, f"{where} ({kind})")
    year = school_year(e.get("school_year"), f"{where} ({kind})")
    return Source(kind=kind, path=path, file=rel, sheet=e.get("sheet"), school_year=year,
                  index=index, columns=columns, header_row=header_row)


def manifest_bytes(manifest) -> int:
    """Bytes of the raw files ``manifest`` names (each file once; its matrix index too):
    how large a run is before anything is read."""
    files = set()
    for s in read_manifest(manifest_path(manifest)):
        files.update(p for p in (s.path, s.index) if p is not None)
    return sum(p.stat().st_size for p in files if p.is_file())
