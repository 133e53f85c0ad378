"""The manifest: which raw file holds which source kind (``manifest.toml``).

```toml
[[source]]
kind = "enrollment"
path = "enrollment_sy2023-2024.xlsx"   # relative to the manifest's folder
sheet = "DATA"                         # optional, spreadsheets only
school_year = "2023-2024"              # optional
index = "road_matrix_index.json"       # road_distances only
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from studentflow.errors import DataError

#: Source kinds the ingestion layer reads (SOURCES.md).
KINDS: tuple[str, ...] = (
    "enrollment", "coordinates", "seats", "private_seats", "transitions", "esc_beneficiaries",
    "esc_slots", "tuition", "esc_rating", "lgu_income", "subsidy_rates", "road_distances",
    "road_network",
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


def _inside(folder: Path, rel: str, where: str) -> Path:
    p = (folder / rel).resolve()
    if not p.is_relative_to(folder):
        raise DataError(f"{where}: path {rel!r} leads outside the manifest's folder {folder}")
    return p


def read_manifest(manifest: Path) -> list[Source]:
    """Parse and check a ``manifest.toml``.

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
        where = f"{name}: [[source]] #{i}"
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
        out.append(Source(kind=kind, path=path, file=rel, sheet=e.get("sheet"),
                          school_year=e.get("school_year"), index=index))
    have = {s.kind for s in out}
    missing = [k for k in REQUIRED_KINDS if k not in have]
    if missing:
        raise DataError(f"{name}: no source of kind {missing} (needed by later stages)")
    return out
