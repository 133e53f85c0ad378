"""Per-school drill-down tables kept during a run (``run_scenarios(school_flows=True)``).

Two compact tables per scenario, summarised over the Monte Carlo draws (mean and 95 %
percentile interval, like every other table):

``esc_origins``
    For each ESC school, where its placed learners come from: one row per origin school
    (Grade 6 school) → ESC school pair with ``placed_mean/_lo/_hi`` (whole learners) and
    ``observed_esc`` (ESC beneficiaries on the pair today). Pairs with no learner in any
    draw and none today are left out.
``jhs_destinations``
    For each public JHS, where the Grade 7 learners it receives today (from the modelled
    origin schools) go: one row ``destination="stays"`` (learners still entering this
    public JHS) and one row per ESC school taking some of them (``destination="ESC"``),
    ``learners_mean/_lo/_hi``. Attribution follows the relief rule of
    :func:`studentflow.scenarios.result.relief_metrics`: an origin's placements above its
    observed ESC beneficiaries leave its public JHS in proportion to today's flows, and
    leave for each ESC school in proportion to the origin's placements there. The ESC
    rows of a JHS add up to its ``relieved`` learners in the same draw. Rows whose mean
    is below :data:`MIN_MEAN` learners are left out (the ``stays`` row never is).

Per-draw pair placements are needed only while a scenario is summarised (draws × pairs
int32, about 4 bytes per pair and draw), never kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from studentflow.scenarios.result import interval

__all__ = ["MIN_MEAN", "on_structure", "esc_origins", "jhs_destinations", "pair_positions", "scenario_tables"]

#: Drill-down rows with a mean below this many learners (and nothing observed) are dropped.
MIN_MEAN = 0.01


def _keys(rows: np.ndarray, cols: np.ndarray, ncols: int) -> np.ndarray:
    return rows.astype(np.int64) * int(ncols) + cols.astype(np.int64)


def _unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for int64 keys, through a hash table and a
    sort of the distinct keys only (a national scenario: 2.5 million keys, 130,000
    distinct; 0.49 s sorting them all, 0.09 s this way)."""
    codes, uniq = pd.factorize(keys)
    order = np.argsort(uniq, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[codes]


def on_structure(whole, indptr: np.ndarray, indices: np.ndarray, shape) -> np.ndarray:
    """Whole placements of ``whole`` (sparse, origins × schools) at each data position of
    the CSR structure ``(indptr, indices)`` (rows sorted, columns sorted within rows), int32."""
    coo = sp.coo_matrix(whole)
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    ref = _keys(rows, indices, shape[1])
    got = _keys(coo.row, coo.col, shape[1])
    pos = np.searchsorted(ref, got)
    ok = (pos < ref.size) & (ref[np.minimum(pos, max(ref.size - 1, 0))] == got) if ref.size else got.size == 0
    if not np.all(ok | (coo.data == 0)):
        raise RuntimeError("rounded placements fall outside the scenario's origin → ESC pairs")
    out = np.zeros(ref.size, np.int64)
    np.add.at(out, pos[ok], coo.data[ok].astype(np.int64))
    return out.astype(np.int32)


def esc_origins(name: str, placed: np.ndarray, origin_ids, school_ids, observed) -> pd.DataFrame:
    """Per origin → ESC school pair of one scenario: observed and placed learners.

    Parameters
    ----------
    placed : numpy.ndarray
        Draws × pair positions, whole learners.
    origin_ids, school_ids, observed : array-like
        Per pair position: origin school id, ESC school id, ESC beneficiaries today.
    """
    mean, lo, hi = interval(placed)
    observed = np.asarray(observed, dtype=np.int64)
    keep = (mean >= MIN_MEAN) | (observed > 0)
    table = pd.DataFrame({
        "scenario": name, "school_id": np.asarray(school_ids)[keep], "origin_id": np.asarray(origin_ids)[keep],
        "observed_esc": observed[keep], "placed_mean": mean[keep], "placed_lo": lo[keep], "placed_hi": hi[keep],
    })
    return table.sort_values(["school_id", "placed_mean", "origin_id"], ascending=[True, False, True],
                             ignore_index=True)


def jhs_destinations(name: str, placed: np.ndarray, rows_global: np.ndarray, cols_local: np.ndarray,
                     n_cols: int, esc_ids, o_out: np.ndarray, obs_origin: np.ndarray, relief) -> pd.DataFrame:
    """Where each public JHS's Grade 7 learners go under one scenario (stay, or which ESC school).

    Parameters
    ----------
    placed : numpy.ndarray
        Draws × pair positions, whole learners.
    rows_global, cols_local : numpy.ndarray
        Per pair position: global origin position and local ESC-school column.
    n_cols : int
        Local ESC-school columns of the scenario; ``esc_ids`` names them.
    o_out : numpy.ndarray
        Draws × global origins, whole learners placed.
    obs_origin : numpy.ndarray
        Observed ESC beneficiaries per global origin.
    relief : tuple
        :func:`studentflow.scenarios.result.relief_matrix` (share, public_total, jhs).
    """
    share, public_total, jhs = relief
    n_orig = share.shape[0]
    extra = np.minimum(np.clip(o_out - obs_origin, 0, None), public_total)  # draws × origins
    weight = np.divide(extra, o_out, out=np.zeros_like(extra, dtype=float), where=o_out > 0)
    # one linear map, built once: cell (JHS j, ESC e) gets share[o, j] of every pair o → e
    share = sp.csr_matrix(share)
    counts = np.diff(share.indptr)[rows_global]
    pair_of_edge = np.repeat(np.arange(rows_global.size), counts)
    starts = share.indptr[rows_global]
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    at = np.repeat(starts, counts) + offset
    keys = _keys(share.indices[at], cols_local[pair_of_edge], n_cols)
    ref, cell = _unique_inverse(keys)
    A = sp.csr_matrix((share.data[at], (cell, pair_of_edge)), shape=(ref.size, rows_global.size))
    values = np.zeros((placed.shape[0], ref.size))
    for d0 in range(0, placed.shape[0], 16):  # draw blocks: bounded memory at national size
        block = placed[d0:d0 + 16] * weight[d0:d0 + 16][:, rows_global]
        values[d0:d0 + 16] = (A @ block.T).T
    mean, lo, hi = interval(values) if ref.size else (np.zeros(0),) * 3
    keep = mean >= MIN_MEAN
    j, e = np.divmod(ref[keep], n_cols)
    esc_ids = np.asarray(esc_ids)
    moved = pd.DataFrame({"scenario": name, "school_id": jhs.index.to_numpy()[j], "destination": "ESC",
                          "destination_id": esc_ids[e], "learners_mean": mean[keep], "learners_lo": lo[keep],
                          "learners_hi": hi[keep]})
    grade7 = np.asarray(share.T @ sp.diags(public_total) @ np.ones(n_orig)).ravel()  # learners entering today
    relieved = np.asarray(share.T @ extra.T).T  # draws × JHS
    s_mean, s_lo, s_hi = interval(grade7[None, :] - relieved)
    stays = pd.DataFrame({"scenario": name, "school_id": jhs.index.to_numpy(), "destination": "stays",
                          "destination_id": jhs.index.to_numpy(), "learners_mean": s_mean,
                          "learners_lo": s_lo, "learners_hi": s_hi})
    stays = stays[grade7 > 0]
    out = pd.concat([stays, moved], ignore_index=True)
    out["_stay"] = out["destination"] != "stays"
    return (out.sort_values(["school_id", "_stay", "learners_mean"], ascending=[True, True, False])
            .drop(columns="_stay").reset_index(drop=True))


def pair_positions(work, pairs: pd.DataFrame) -> tuple:
    """(local row, local column, observed ESC beneficiaries) per data position of a work unit."""
    observed = pairs["esc_beneficiaries"].to_numpy()[work.order]
    return np.repeat(np.arange(work.shape[0]), np.diff(work.indptr)), work.indices.copy(), observed


def scenario_tables(name, rows, cols, positions, placed, o_out, obs_origin, relief, origin_ids, school_ids):
    """(esc_origins, jhs_destinations or None) of one scenario.

    ``rows`` / ``cols``: global origin / school position of each local row / column;
    ``positions``: :func:`pair_positions`; ``placed``: draws × pair positions (whole
    learners); ``o_out``: draws × global origins; ``relief``: ``relief_matrix`` or None.
    """
    local_rows, local_cols, observed = positions
    o_glob = rows[local_rows]
    origins = esc_origins(name, placed, origin_ids.to_numpy()[o_glob], school_ids.to_numpy()[cols[local_cols]],
                          observed)
    if relief is None:
        return origins, None
    dest = jhs_destinations(name, placed, o_glob, local_cols, cols.size, school_ids.to_numpy()[cols], o_out,
                            obs_origin, relief)
    return origins, dest
