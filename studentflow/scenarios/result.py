"""The result of :func:`studentflow.scenarios.run.run_scenarios`: Monte Carlo summaries.

Intervals are the 2.5 % and 97.5 % percentiles over the Monte Carlo draws, which
carry both the uncertainty of the estimated gravity coefficients (one coefficient
vector drawn per draw) and the rounding of expected flows to whole learners.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from studentflow.scenarios.costs import COST_METRICS, RATIO_METRICS
from studentflow.schema import id_positions

#: Per-draw metrics summarised into ``table`` as ``<metric>_mean/_lo/_hi``.
DRAW_METRICS: dict[str, str] = {
    "placed": "learners placed in ESC schools (whole learners)",
    "placed_expected": "learners placed before rounding (expected flows)",
    "vs_observed": "placed minus observed ESC beneficiaries, learners",
    "vs_observed_pct": "placed vs observed ESC beneficiaries, percent",
    "vs_baseline": "placed minus the baseline scenario's placed (same draw), learners",
    "vs_baseline_pct": "placed vs the baseline scenario (same draw), percent",
    "share_congested": "share of placed learners from origins feeding congested public JHS",
    "share_new_pairs": "share of placed learners on origin→school pairs not observed today",
    "relieved": "learners taken out of public JHS (placements above observed ESC)",
    "relieved_vs_baseline": "relieved minus the baseline scenario's relieved (same draw), learners",
    "aisle_after": "aisle learners (JHS enrolment above seats) left in public JHS",
    "congested_after": "public JHS still congested (utilisation > 1)",
    "displaced": "learners of origins placing fewer than in the comparison scenario (expected flows)",
    "slot_utilisation": "placed / slots available, all ESC schools",
    # the cost model (studentflow.scenarios.costs); its price ratios are summarised there
    **{k: v for k, v in COST_METRICS.items() if k not in RATIO_METRICS},
}


#: draws × columns arrays larger than this many values are summarised in column blocks
INTERVAL_BLOCK = 1 << 22


def interval(values: np.ndarray, axis: int = 0, block: int = INTERVAL_BLOCK) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray]:
    """Mean and 95 % percentile interval of ``values`` along ``axis``.

    A 2-D array summarised along axis 0 with more than ``block`` values goes in blocks
    of columns (each column's figures are its own; the same numbers): the float copy
    and the percentile's sorted copy are one block's, not the whole array's (draws ×
    pairs int32 of a national drill-down: 138 MB, whose float copies were 552 MB)."""
    values = np.asarray(values)
    n = values.shape[1] if values.ndim == 2 else 0
    layout = values.flags.c_contiguous or values.flags.f_contiguous
    if axis == 0 and n > 3 and values.size > block and layout:
        # blocks of >= 2 columns in the array's own memory order: numpy then sums each
        # column as in the whole array (row by row in C order, pairwise in Fortran order)
        step = max(2, block // max(values.shape[0], 1))
        cuts = list(range(0, n, step)) + [n]
        if cuts[-1] - cuts[-2] < 2:
            del cuts[-2]
        parts = [_interval(np.array(values[:, a:b], dtype=float, order="K")) for a, b in zip(cuts, cuts[1:])]
        return tuple(np.concatenate(x) for x in zip(*parts))
    return _interval(np.asarray(values, dtype=float), axis)


def _interval(values: np.ndarray, axis: int = 0):
    mean = values.mean(axis=axis)
    lo, hi = np.percentile(values, [2.5, 97.5], axis=axis)
    return mean, lo, hi


def summarise_draws(per_draw: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario: mean, lo, hi of every metric in :data:`DRAW_METRICS`."""
    rows = []
    for name, grp in per_draw.groupby("scenario", sort=False):
        row: dict = {"scenario": name}
        for metric in DRAW_METRICS:
            if metric not in grp:
                continue
            mean, lo, hi = interval(grp[metric].to_numpy())
            row[f"{metric}_mean"] = float(mean)
            row[f"{metric}_lo"] = float(lo)
            row[f"{metric}_hi"] = float(hi)
        rows.append(row)
    return pd.DataFrame(rows)


def relief_matrix(bundle, origin_ids):
    """(R, public_total, jhs) : origin share of flows to each public JHS, JHS table."""
    from studentflow.congestion import jhs_congestion

    jhs = jhs_congestion(bundle)
    jhs = jhs[jhs["jhs_seats"].astype(float) > 0]
    f = bundle.flows  # ids looked up once per distinct id (the flows' isin cost 0.25 s nationally)
    o_pos = id_positions(pd.Index(origin_ids), f["origin_id"])
    j_pos = id_positions(jhs.index, f["destination_id"])
    keep = (o_pos >= 0) & (j_pos >= 0)
    flows = sp.csr_matrix(
        (f["learners"].to_numpy(dtype=float)[keep], (o_pos[keep], j_pos[keep])), shape=(len(origin_ids), len(jhs))
    )
    total = np.asarray(flows.sum(axis=1)).ravel()
    share = sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)) @ flows
    return share.tocsr(), total, jhs


def relief_metrics(name, o_out, obs_origin, relief, base_relieved=None, is_baseline=False):
    """Per-draw relief totals, the per-JHS table and the draws × JHS relief of one scenario.

    Each origin's whole-learner placements above its observed ESC beneficiaries (at most
    its learners in public JHS) are taken out of its public JHS in proportion to its
    observed flows. ``base_relieved`` (the baseline scenario's draws × JHS relief, same
    draws) adds ``relieved_vs_baseline_mean/_lo/_hi`` per JHS: the scenario's own effect
    (zero for the baseline itself, ``is_baseline``).
    """
    share, public_total, jhs = relief
    extra = np.subtract(o_out, obs_origin, dtype=float)  # draws × origins, in place below: one array, not three
    np.clip(extra, 0, None, out=extra)
    np.minimum(extra, public_total, out=extra)
    relieved = np.asarray(share.T @ extra.T).T  # draws × JHS, learners
    enrol = jhs["jhs_enrolment"].to_numpy(dtype=float)
    seats = jhs["jhs_seats"].to_numpy(dtype=float)
    after = enrol - relieved
    metrics = {
        "relieved": relieved.sum(axis=1),
        "aisle_after": np.clip(after - seats, 0, None).sum(axis=1),
        "congested_after": (after / seats > 1).sum(axis=1),
    }
    m, lo, hi = interval(relieved)
    table = pd.DataFrame({
        "scenario": name, "school_id": jhs.index.to_numpy(), "jhs_seats": seats,
        "enrolment_before": enrol, "utilisation_before": enrol / seats,
        "aisle_before": np.clip(enrol - seats, 0, None),
        "relieved_mean": m, "relieved_lo": lo, "relieved_hi": hi,
        "utilisation_after_mean": (enrol - m) / seats,
        "aisle_after_mean": np.clip(after - seats, 0, None).mean(axis=0),
        "congested_after_share": (after / seats > 1).mean(axis=0),
    })
    if is_baseline:
        base_relieved = relieved
    if base_relieved is not None:
        dm, dlo, dhi = interval(relieved - base_relieved)
        table.insert(table.columns.get_loc("relieved_hi") + 1, "relieved_vs_baseline_mean", dm)
        table.insert(table.columns.get_loc("relieved_vs_baseline_mean") + 1, "relieved_vs_baseline_lo", dlo)
        table.insert(table.columns.get_loc("relieved_vs_baseline_lo") + 1, "relieved_vs_baseline_hi", dhi)
    return metrics, table, relieved


def esc_table(name, placed, caps, school_ids) -> pd.DataFrame:
    """Per ESC school: slots, placed (mean and 95 % interval), utilisation, share of draws full."""
    m, lo, hi = interval(placed)
    slots = caps.astype(float)
    return pd.DataFrame({
        "scenario": name, "school_id": school_ids.to_numpy(), "slots": caps,
        "placed_mean": m, "placed_lo": lo, "placed_hi": hi,
        "utilisation_mean": np.divide(m, slots, out=np.full_like(m, np.nan), where=slots > 0),
        "full_share": (placed >= caps).mean(axis=0),
    })


@dataclass(frozen=True)
class ScenarioResult:
    """Monte Carlo results of a set of scenarios.

    Attributes
    ----------
    scenarios : tuple of Scenario
        In run order.
    baseline : str
        Name of the baseline scenario (``vs_baseline`` columns compare with it).
    draws, seed : int
        Monte Carlo draws and the seed that makes the run reproducible.
    observed_esc : int
        Observed ESC beneficiaries on the pair table, learners.
    table : pandas.DataFrame
        One row per scenario: description, slots (learners), and ``<metric>_mean``,
        ``_lo``, ``_hi`` (95 % interval) for every metric of :data:`DRAW_METRICS`.
    per_draw : pandas.DataFrame
        One row per scenario and draw with the raw metrics.
    esc_schools : pandas.DataFrame
        Per scenario and ESC school: ``slots``, ``placed_mean/_lo/_hi``,
        ``utilisation_mean`` (placed / slots) and ``full_share`` (share of draws at
        capacity).
    public_jhs : pandas.DataFrame
        Per scenario and public JHS: ``jhs_seats``, ``enrolment_before``,
        ``utilisation_before``, ``aisle_before``, ``relieved_mean/_lo/_hi``,
        ``utilisation_after_mean``, ``aisle_after_mean``, ``congested_after_share``.
        Empty if no bundle was given.
    origin_placed, school_placed : dict
        Scenario name → int32 array (draws × origins / draws × schools) of whole
        learners placed; ``origin_ids`` / ``school_ids`` name the columns and
        ``pools`` / ``capacities`` give each scenario's constraints.
    origin_expected : dict
        Scenario name → float64 array (draws × origins) of expected placements before
        rounding (used for ``displaced``). These three are read-only memory maps when
        the run wrote them to a directory (``run_scenarios(keep_draws=path)``) and empty
        when it kept none (``keep_draws=False``); every table is the same either way.
    params : pandas.DataFrame
        The coefficient vectors drawn (one row per draw).
    esc_origins, jhs_destinations : pandas.DataFrame
        Per-school drill-down (:mod:`studentflow.scenarios.drill`), filled when the run
        was asked for it (``run_scenarios(school_flows=True)``), else empty.
    calibration : Calibration or None
        The calibrated status quo every scenario ran on
        (:func:`studentflow.scenarios.calibrate.calibrate_status_quo`), None if uncalibrated.
    points : dict
        Label → ScenarioResult: point estimates of other fitted models on the same
        scenarios (``run_scenarios(points=...)``), else empty.
    """

    scenarios: tuple
    baseline: str
    draws: int
    seed: int
    observed_esc: int
    table: pd.DataFrame
    per_draw: pd.DataFrame
    esc_schools: pd.DataFrame
    public_jhs: pd.DataFrame
    origin_ids: np.ndarray
    school_ids: np.ndarray
    origin_placed: dict = field(default_factory=dict)
    school_placed: dict = field(default_factory=dict)
    origin_expected: dict = field(default_factory=dict)
    pools: dict = field(default_factory=dict)
    capacities: dict = field(default_factory=dict)
    params: pd.DataFrame = field(default_factory=pd.DataFrame)
    esc_origins: pd.DataFrame = field(default_factory=pd.DataFrame)
    jhs_destinations: pd.DataFrame = field(default_factory=pd.DataFrame)
    calibration: object = None
    points: dict = field(default_factory=dict)

    def scenario_table(self) -> pd.DataFrame:
        """Readable table: one row per scenario, rounded, intervals as "lo–hi"."""
        t = self.table
        out = pd.DataFrame({"scenario": t["scenario"], "slots": [f"{int(v):,}" for v in t["slots"]]})

        def fmt(col, digits=0, scale=1.0):
            return [
                f"{m * scale:,.{digits}f} ({lo * scale:,.{digits}f}–{hi * scale:,.{digits}f})"
                for m, lo, hi in zip(t[f"{col}_mean"], t[f"{col}_lo"], t[f"{col}_hi"])
            ]

        out["placed (95% interval)"] = fmt("placed")
        out["vs observed %"] = fmt("vs_observed_pct", 1)
        out["vs baseline"] = fmt("vs_baseline")
        out["from congested-feeding origins %"] = fmt("share_congested", 1, 100)
        out["on new pairs %"] = fmt("share_new_pairs", 1, 100)
        if "relieved_mean" in t:
            out["relieved from public JHS"] = fmt("relieved")
            if "relieved_vs_baseline_mean" in t:
                out["relieved vs baseline"] = fmt("relieved_vs_baseline")
            out[f"aisle learners left (today {t['aisle_before'].iloc[0]:,.0f})"] = fmt("aisle_after")
            out[f"congested public JHS (today {int(t['congested_before'].iloc[0]):,})"] = fmt("congested_after")
        if "displaced_mean" in t:
            out["displaced"] = fmt("displaced")
        if "cost_mean" in t:
            out["cost, ₱ million/year"] = fmt("cost", 1, 1e-6)
            out["cost vs baseline, ₱ million"] = fmt("cost_vs_baseline", 1, 1e-6)
            out["of which inframarginal, ₱ million"] = fmt("cost_inframarginal", 1, 1e-6)
            out["₱ per added learner"] = fmt("pesos_per_added_learner")
            if "pesos_per_relieved_mean" in t:
                out["₱ per learner relieved (congested JHS)"] = fmt("pesos_per_relieved")
        return out

    def summary(self) -> str:
        """Plain-text summary: one line per scenario with means and 95 % intervals."""
        lines = [
            f"studentflow scenarios: {len(self.scenarios)} scenarios x {self.draws} draws "
            f"(seed {self.seed}); observed ESC beneficiaries {self.observed_esc:,}; "
            f"baseline {self.baseline!r}",
        ]
        width = max(24, *(len(str(n)) for n in self.table["scenario"]))
        for _, r in self.table.iterrows():
            line = (
                f"  {r['scenario']:<{width}} placed {r['placed_mean']:>10,.0f} "
                f"[{r['placed_lo']:,.0f}, {r['placed_hi']:,.0f}]  "
                f"vs observed {r['vs_observed_pct_mean']:+6.1f}%  "
                f"vs baseline {r['vs_baseline_mean']:+9,.0f}  "
                f"slots {int(r['slots']):,}"
            )
            if "relieved_mean" in r and np.isfinite(r["relieved_mean"]):
                line += f"  relieved {r['relieved_mean']:,.0f}"
                if "relieved_vs_baseline_mean" in r:
                    line += (f" ({r['relieved_vs_baseline_mean']:+,.0f} "
                             f"[{r['relieved_vs_baseline_lo']:+,.0f}, {r['relieved_vs_baseline_hi']:+,.0f}] vs baseline)")
            lines.append(line)
            if "cost_mean" in r and np.isfinite(r["cost_mean"]):
                lines.append(" " * (width + 3) + _cost_line(r))
        return "\n".join(lines)


def _pesos(v: float) -> str:
    """₱ amount for text: millions above a million, 'n/a' when undefined."""
    if not np.isfinite(v):
        return "∞" if v > 0 else "n/a"
    return f"₱{v / 1e6:,.1f}M" if abs(v) >= 1e6 else f"₱{v:,.0f}"


def _cost_line(r) -> str:
    """The summary's cost line of one scenario row (pesos per school year)."""
    line = (f"cost {_pesos(r['cost_mean'])}/yr [{_pesos(r['cost_lo'])}, {_pesos(r['cost_hi'])}]"
            f"  vs baseline {'+' if r['cost_vs_baseline_mean'] >= 0 else ''}{_pesos(r['cost_vs_baseline_mean'])}"
            f" (inframarginal {_pesos(r['cost_inframarginal_mean'])})")
    for key, what in (("pesos_per_added_learner", "per added learner"),
                      ("pesos_per_relieved", "per learner relieved from congested JHS")):
        if f"{key}_mean" in r and not np.isnan(r[f"{key}_mean"]):
            line += (f"  {_pesos(r[f'{key}_mean'])} {what} "
                     f"[{_pesos(r[f'{key}_lo'])}, {_pesos(r[f'{key}_hi'])}]")
    return line
