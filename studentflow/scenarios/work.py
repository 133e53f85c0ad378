"""Work units of a scenario run: the pair tables (built once), design, sparse structure.

A run's pair tables are built once (:class:`PairTables`): the table given to
:func:`studentflow.scenarios.run.run_scenarios` and, only if some scenario's candidate
radius reaches further, one table at the widest such radius. Each scenario is then a
change to one of them (:func:`studentflow.scenarios.levers.scenario_pairs`): new pairs
beyond its radius dropped, subsidy levers applied to ``esc_amount`` / ``net_cost_k``.
Its work unit (:class:`_Prepared`) holds what its draws need: the design matrix of its
pairs (so that each draw is one ``X @ β``), the sparse origin × ESC-school structure,
pools and capacities.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from studentflow.errors import DataError
from studentflow.scenarios.draws import CompactDesign, DrawWork, compact_columns, linear_predictor
from studentflow.scenarios.levers import scenario_capacities, scenario_pairs, widened_pairs
from studentflow.scenarios.spec import Scenario
from studentflow.schema import id_positions

__all__ = ["PairTables"]


@dataclass(frozen=True)
class PairTables:
    """The pair tables of one run, each built once (see the module docstring).

    Attributes
    ----------
    base : pandas.DataFrame
        The PairTable the run was given (or built).
    wide : pandas.DataFrame or None
        The table at the widest scenario radius beyond ``base``'s reach (km), or None.
    """

    base: pd.DataFrame
    wide: pd.DataFrame | None = None

    @classmethod
    def for_run(cls, scenarios, pairs: pd.DataFrame, bundle=None, distances=None) -> "PairTables":
        """Build the widened table once if any scenario needs it."""
        return cls(pairs, widened_pairs(scenarios, pairs, bundle, distances))

    def for_scenario(self, scenario: Scenario, bundle=None, *, parts: bool = False):
        """Scenario ``scenario``'s pair table, filtered and changed from these (no rebuild);
        with ``parts``, also the subsidy increase's school and origin parts (pesos)."""
        return scenario_pairs(scenario, self.base, bundle, wide=self.wide, parts=parts)


# ---------------------------------------------------------------- prediction
#: rows per block of the compact design (:func:`_design`)
DESIGN_BLOCK = 1 << 17


def _concat_column(parts) -> np.ndarray:
    """One design column from its row blocks: uint8 only if every block is 0/1."""
    if all(p.dtype == np.uint8 for p in parts):
        return np.concatenate(parts)
    return np.concatenate([p.astype(float) for p in parts])


def _design(model, pairs: pd.DataFrame, compact: bool = False):
    """(X, offset) with ``model.predict(pairs, params=b) == exp(X @ b + offset)``.

    Uses the fitted formula's design (``model.design_info``) when the model has one;
    otherwise recovers X from the model's own ``predict`` with unit coefficient vectors,
    so any log-linear model honouring the contract works. Checked against
    ``model.predict``; returns None (predict per draw) if the check fails. With
    ``compact``, X is a tuple of columns, 0/1 ones as uint8
    (:func:`studentflow.scenarios.draws.compact_columns`; the same expected flows, and
    the float matrix is never built, and the formula's design is made in row blocks of
    :data:`DESIGN_BLOCK`: at national size the float matrix is 22 columns x 345,000
    pairs x 8 bytes = 61 MB, the compact one 17 MB).
    """
    names = model.params.index
    X = offset = None
    if getattr(model, "design_info", None) is not None:
        try:
            from studentflow.gravity.model import design_matrix

            if compact:  # in row blocks: the formula engine's temporaries stay small
                blocks = [compact_columns(design_matrix(model.design_info, pairs.iloc[a:a + DESIGN_BLOCK]),
                                          names) for a in range(0, len(pairs), DESIGN_BLOCK)]
                X = tuple(_concat_column([b[k] for b in blocks]) for k in range(len(names)))
                del blocks
                X = CompactDesign.from_columns(X)
            else:
                X = design_matrix(model.design_info, pairs)[list(names)].to_numpy(dtype=float)
            offset = np.zeros(len(pairs))
        except (ImportError, KeyError, TypeError, ValueError):
            X = None
    if X is None:
        zero = pd.Series(0.0, index=names)
        with np.errstate(divide="ignore"):
            offset = np.log(np.asarray(model.predict(pairs, params=zero), dtype=float))
            cols = []
            for name in names:
                unit = zero.copy()
                unit[name] = 1.0
                cols.append(np.log(np.asarray(model.predict(pairs, params=unit), dtype=float)) - offset)
        X = np.column_stack(cols) if cols else np.zeros((len(pairs), 0))
        X = CompactDesign.from_columns(compact_columns(X, range(X.shape[1]))) if compact else X
    return (X, offset) if _predicts(model, pairs, X, offset) else None


def _predicts(model, pairs: pd.DataFrame, X, offset) -> bool:
    """Whether the design ``(X, offset)`` (a matrix or a :class:`CompactDesign`) is finite
    and gives ``model.predict`` on the first 2,000 pairs (relative 1e-6)."""
    compact = isinstance(X, CompactDesign)
    check = slice(0, min(len(pairs), 2000))
    ref = np.asarray(model.predict(pairs.iloc[check]), dtype=float)
    head = tuple(c[check] for c in X.columns()) if compact else X[check]
    got = np.exp(linear_predictor(head, offset[check], model.params.to_numpy(dtype=float)))
    finite = np.isfinite(X.floats).all() if compact else np.all(np.isfinite(X))
    return bool(finite and np.allclose(got, ref, rtol=1e-6, atol=1e-12))


def _global_positions(pos: pd.Series, ids: pd.Series) -> np.ndarray:
    """``pos.loc[ids]`` as an array (ids looked up once each; KeyError if one is absent)."""
    at = id_positions(pos.index, ids)
    if (at < 0).any():
        raise KeyError(f"{ids.name}: {ids.iloc[int(np.flatnonzero(at < 0)[0])]!r} is not in the run's index")
    return pos.to_numpy()[at]


def _unique_positions(pos: np.ndarray, size: int):
    """``np.unique(pos, return_inverse=True)`` for positions in ``[0, size)``, by counting."""
    present = np.bincount(pos, minlength=size) > 0
    rank = np.cumsum(present) - 1
    return np.flatnonzero(present), rank[pos]


@dataclass(frozen=True)
class _Prepared:
    scenario: Scenario
    pairs: pd.DataFrame
    rows: np.ndarray  # global origin position of each local row
    cols: np.ndarray  # global school position of each local column
    pools: np.ndarray  # global, learners
    caps: np.ndarray  # global, slots
    work: DrawWork  # what each draw needs (local rows / columns)
    school_extra: np.ndarray  # global, pesos: the school part of the subsidy increase
    origin_extra: np.ndarray  # global, pesos: the origin part (targeted increases)
    design: tuple | None = None  # (X, offset) in pair-row order, before calibration (sibling units share it)


def _sibling_design(prep: _Prepared, model, first_model):
    """``prep``'s design, if ``model`` would build the same one (the same fitted formula and
    terms, and its own predictions match it): a sibling unit then shares it."""
    from studentflow.gravity.direct import same_plan

    if prep.design is None or list(model.params.index) != list(first_model.params.index) \
            or not same_plan(getattr(model, "design_info", None), getattr(first_model, "design_info", None)):
        return None
    return prep.design if _predicts(model, prep.pairs, *prep.design) else None


def _prepare(s: Scenario, tables: PairTables, bundle, model, origin_pos, school_pos, origins, schools,
             calibration=None, keep_pairs: bool = False, pool_draws=None, demand_draws=None, *,
             sibling_of: tuple | None = None):
    """The work unit of scenario ``s``: its pair table, design and sparse structure; with a
    :class:`~studentflow.scenarios.calibrate.Calibration`, μ_ij × w_j (the calibrated state);
    ``pool_draws`` (draws × global origins, learners): the pools of each draw;
    ``demand_draws`` (draws × global schools): multipliers of each school's demand.
    ``sibling_of=(prep, its model)``: the same scenario's unit for another model, sharing
    ``prep``'s pair table and structure (and its design when the model's is the same):
    what ``_prepare`` would build for this model, without building it again."""
    if sibling_of is None:
        p, school_extra, origin_extra = tables.for_scenario(s, bundle, parts=True)
        if p.empty:
            raise DataError(f"scenario {s.name!r}: no origin→ESC pairs left (radius_km={s.radius_km})")
        o_glob = _global_positions(origin_pos, p["origin_id"])
        d_glob = _global_positions(school_pos, p["destination_id"])
        rows, r = _unique_positions(o_glob, len(origins))
        cols, c = _unique_positions(d_glob, len(schools))
        # np.lexsort((c, r)): one stable argsort of the packed keys (the same order)
        order = np.argsort(r.astype(np.int64) * cols.size + c, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=rows.size))])
        shape = (rows.size, cols.size)
        is_new = (p["pair_type"] == "new").to_numpy(dtype=bool, na_value=False).astype(float)[order]
        new_mask = sp.csr_matrix((is_new, c[order], indptr), shape=shape)
        indices = c[order].astype(np.int32)
        caps = scenario_capacities(
            s, schools["destination_slots"], schools["destination_billed"], schools.index
        )
        design = _design(model, p, compact=True)
    else:
        prep = sibling_of[0]
        p, rows, cols, caps, w = prep.pairs, prep.rows, prep.cols, prep.caps, prep.work
        order, indices, indptr, shape, new_mask = w.order, w.indices, w.indptr, w.shape, w.new_mask
        design = _sibling_design(prep, model, sibling_of[1])
        shared = design is not None  # prep's own X, already in data order in prep.work
        if design is None:
            design = _design(model, p, compact=True)
    pools = origins["origin_pool"].to_numpy(dtype=float)
    if s.pool == "non_beneficiaries":
        pools = pools - origins["origin_esc_beneficiaries"].to_numpy(dtype=float)
    pools = np.clip(pools, 0, None)
    if pool_draws is not None:
        if s.pool == "non_beneficiaries":
            pool_draws = pool_draws - origins["origin_esc_beneficiaries"].to_numpy(dtype=float)[None, :]
        pool_draws = np.ascontiguousarray(np.clip(pool_draws, 0, None)[:, rows])
    unordered = design
    if calibration is not None:  # the calibrated state: μ_ij × w_j (log w_j joins the offset)
        if design is not None:
            with np.errstate(divide="ignore"):
                design = (design[0], design[1] + np.log(calibration.factor_of(p["destination_id"])))
        else:
            from studentflow.scenarios.calibrate import CalibratedModel

            model = CalibratedModel(model, calibration)
    if design is not None:  # rows in data order: no gather of μ per draw
        X, off = design
        if sibling_of is not None and shared:
            X = sibling_of[0].work.design[0]
        else:
            X = X.take(order) if isinstance(X, CompactDesign) else np.ascontiguousarray(X[order])
        design = (X, np.ascontiguousarray(np.asarray(off, dtype=float)[order]))
        del X, off
    work = DrawWork(
        name=s.name, method=s.method, design=design,
        predict=None if design is not None else (model, p, model.params.index),
        order=order, indices=indices, indptr=indptr, shape=shape,
        pools=pools[rows], caps=caps[cols].astype(float), new_mask=new_mask, keep_pairs=keep_pairs,
        pool_draws=pool_draws, in_order=design is not None,
        demand_draws=None if demand_draws is None else np.ascontiguousarray(demand_draws[:, cols]),
    )
    if sibling_of is not None:
        return replace(prep, work=work, pools=pools, design=None)
    school_extra = school_extra.reindex(schools.index).fillna(0.0).to_numpy(dtype=float)
    origin_extra = origin_extra.reindex(origins.index).fillna(0.0).to_numpy(dtype=float)
    return _Prepared(s, p, rows, cols, pools, caps, work, school_extra, origin_extra, unordered)


@dataclass(frozen=True)
class _Kept:
    """What outlives a scenario's work unit: its constraints and local→global positions."""

    scenario: Scenario
    rows: np.ndarray
    cols: np.ndarray
    pools: np.ndarray
    caps: np.ndarray
    school_extra: np.ndarray  # pesos, for the cost model (studentflow.scenarios.costs)
    origin_extra: np.ndarray
    pair_positions: tuple | None = None  # drill-down: (local rows, local cols, observed ESC) per position


def _global_index(tables: PairTables):
    """(origins, schools): one row per origin / ESC school over every table of the run
    (first non-null value, in table order; a widened table only adds rows)."""
    o_cols = ["origin_pool", "origin_esc_beneficiaries", "origin_feeds_congested"]
    s_cols = ["destination_slots", "destination_billed", "esc_amount"]  # base table first: today's amount
    o_parts, s_parts = [], []
    for p in (tables.base, tables.wide):
        if p is not None:
            o_parts.append(p.groupby("origin_id", sort=False)[o_cols].first())
            s_parts.append(p.groupby("destination_id", sort=False)[s_cols].first())
    origins = pd.concat(o_parts).groupby(level=0, sort=True).first()
    schools = pd.concat(s_parts).groupby(level=0, sort=True).first()
    origins.index.name, schools.index.name = "origin_id", "destination_id"
    return origins, schools
