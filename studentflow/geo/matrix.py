"""Precomputed OSRM-style distance matrices (``.npy`` in metres or km + a JSON index).

Layout (docs/contracts.md §1): ``X.npy`` holds a dense float matrix, rows = origins,
columns = destinations; ``X_index.json`` beside it is ``{"units": "m", "rows":
{"136512": [0], "136513": [1, 2], ...}, "cols": {...}}``. A school listed under several
rows/columns (two coordinate rows) takes the minimum; without ``"cols"`` the matrix is
square with the row index. NaN / inf cells are "no route". Use
:func:`studentflow.geo.distances.road_distances` (``matrix=``) rather than the private helper here:
it also sets within-school pairs to 0 km.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from studentflow.errors import DataError
from studentflow.geo.blocks import _block_rows, _cat

__all__ = ["read_matrix"]


def read_matrix(matrix) -> tuple[np.ndarray, dict, dict, float]:
    """Open an OSRM-style distance matrix and its JSON index.

    Parameters
    ----------
    matrix : str, Path or (npy, index) tuple
        ``X.npy`` (index beside it as ``X_index.json``) or an explicit pair: the ``.npy``
        path and the index as a JSON path or as the already parsed object (ingest passes
        the index with re-issued school IDs replaced, see
        :meth:`studentflow.ingest.crosswalk.Crosswalk.remap_matrix_index`).

    Returns
    -------
    (values, rows, cols, to_km)
        The memory-mapped matrix, ``{school_id: [row, ...]}``, ``{school_id: [col, ...]}``
        (same as rows for a square matrix without ``"cols"``) and the factor to km.
    """
    parsed = None
    if isinstance(matrix, (tuple, list)):
        npy, idx = Path(matrix[0]), matrix[1]
        if isinstance(idx, dict):
            parsed, idx = idx, Path(idx.get("_source", npy.with_name(npy.stem + "_index.json")))
        else:
            idx = Path(idx)
    else:
        npy = Path(matrix)
        idx = npy.with_name(npy.stem + "_index.json")
    for p in (npy,) if parsed is not None else (npy, idx):
        if not p.exists():
            raise DataError(f"{p}: distance matrix file not found")
    try:
        values = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{npy}: not a readable .npy matrix ({exc})") from None
    if values.ndim != 2:
        raise DataError(f"{npy}: expected a 2-D matrix, got shape {values.shape}")
    try:
        index = parsed if parsed is not None else json.loads(idx.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{idx}: invalid JSON ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("rows"), dict):
        raise DataError(f'{idx}: expected an object with "rows" {{school_id: [row, ...]}}')
    units = index.get("units", "m")
    to_km = {"m": 1e-3, "km": 1.0}.get(units)
    if to_km is None:
        raise DataError(f'{idx}: "units" must be "m" or "km", got {units!r}')
    if "cols" not in index and values.shape[0] != values.shape[1]:
        raise DataError(f'{idx}: no "cols" given but matrix {npy.name} is not square {values.shape}')

    def clean(key: str, n: int) -> dict:
        out = {}
        for sid, pos in index.get(key, index["rows"]).items():
            pos = [pos] if isinstance(pos, int) else pos
            if (not isinstance(pos, list) or not pos
                    or not all(isinstance(p, int) and 0 <= p < n for p in pos)):
                raise DataError(f"{idx}: {key}[{sid!r}] must be a non-empty list of integers in [0, {n})")
            out[str(sid)] = pos
        return out

    return values, clean("rows", values.shape[0]), clean("cols", values.shape[1]), to_km


def _grouped(ids, mapping):
    """Positions of ``ids`` found in ``mapping``: (found mask, flat positions, group starts)."""
    found = np.array([i in mapping for i in ids], dtype=bool)
    lists = [mapping[i] for i in np.asarray(ids, dtype=object)[found]]
    flat = np.array([p for lst in lists for p in lst], dtype=np.int64)
    starts = np.cumsum([0] + [len(lst) for lst in lists[:-1]]).astype(np.int64) if lists else np.empty(0, np.int64)
    return found, flat, starts


def _matrix(matrix, o_ids, d_ids, max_km, block_size):
    """Matrix distances of ids: (i, j, km, unreachable pairs, origin found mask, destination found mask)."""
    values, rows, cols, to_km = read_matrix(matrix)
    name = matrix[0] if isinstance(matrix, (tuple, list)) else matrix
    o_found, o_flat, o_starts = _grouped(o_ids, rows)
    d_found, d_flat, d_starts = _grouped(d_ids, cols)
    o_pos, d_pos = np.flatnonzero(o_found), np.flatnonzero(d_found)
    parts, unreachable = [], 0
    if len(o_pos) and len(d_pos):
        bs = _block_rows(len(d_flat), block_size)
        bounds = np.r_[o_starts, len(o_flat)]
        for s in range(0, len(o_pos), bs):
            r0, r1 = bounds[s], bounds[min(s + bs, len(o_pos))]
            sub = np.asarray(values[o_flat[r0:r1]][:, d_flat], dtype=float)
            if (sub < 0).any():
                raise DataError(f"{name}: negative distance in the matrix")
            sub = np.fmin.reduceat(sub, o_starts[s:s + bs] - r0, axis=0)
            sub = np.fmin.reduceat(sub, d_starts, axis=1) * to_km
            ok = np.isfinite(sub)
            unreachable += int((~ok).sum())
            if max_km is not None:
                ok &= sub <= max_km
            i, j = np.nonzero(ok)
            parts.append((o_pos[i + s], d_pos[j], sub[i, j]))
    i, j, d = _cat(parts)
    return i, j, d, unreachable, o_found, d_found
