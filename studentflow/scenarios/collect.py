"""Collecting a scenario sweep: per-draw outcomes → summaries → :class:`ScenarioResult`.

:class:`_Accumulator` takes each scenario's draws as the sweep yields them (in run
order: the baseline and the scenarios others compare with first), keeps the per-draw
metrics (whole learners), the per-ESC-school and per-public-JHS tables and the
per-draw arrays ``keep_draws`` asks for, and drops the rest at once; ``result()`` then
pairs every scenario with the baseline draw by draw and assembles the result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.scenarios import costs
from studentflow.scenarios.result import ScenarioResult, esc_table, relief_metrics, summarise_draws

__all__: list[str] = []


def _keep_array(keep, arr, i, kind):
    """The per-draw array as the result keeps it: in memory, as a read-only memmap of an
    ``.npy`` file in the directory ``keep``, or not at all (``keep`` False)."""
    if keep is True:
        return arr
    if keep is False:
        return None
    path = Path(keep) / f"scenario{i:05d}_{kind}.npy"
    np.save(path, arr)
    return np.load(path, mmap_mode="r")


class _Accumulator:
    """Summaries of a sweep so far (see the module docstring)."""

    def __init__(self, origins, schools, observed: int, n_draws: int, baseline: str, ref_of: dict,
                 relief, keep_draws):
        self.origins, self.schools, self.observed, self.n_draws = origins, schools, observed, n_draws
        self.baseline, self.ref_of, self.relief, self.keep_draws = baseline, ref_of, relief, keep_draws
        self.refs = set(ref_of.values())
        self.feeds = origins["origin_feeds_congested"].to_numpy(dtype=bool)
        self.obs_origin = origins["origin_esc_beneficiaries"].to_numpy(dtype=float)
        self.kept, self.records, self.jhs_rows, self.esc_rows, self.arrays = {}, {}, {}, {}, {}
        self.drill = {}  # drill-down tables per scenario (studentflow.scenarios.drill)
        self.base_by_jhs = None  # the baseline's relief, draws × public JHS (learners)
        self.ref_expected, self.waiting, self.displaced = {}, {}, {}
        self.base_costs = None  # the baseline's placements for the cost model (costs.BaselineDraws)
        self.amount = schools["esc_amount"].to_numpy(dtype=float)  # today's ESC amount, pesos

    def add(self, i: int, k, outs, after_draws=None) -> None:
        """Take scenario ``i``'s draws (``k``: its constraints and positions). ``outs``
        (DrawOutcomes in draw order: a list, emptied as its arrays are copied, or an
        iterator, read as the draws finish) is never held whole beside the scenario's
        arrays; ``after_draws`` is called once every draw is read.  Expected placements
        per origin are kept only where needed (the scenarios others compare with, the
        per-draw arrays asked for); else each draw's shortfall against the reference is
        summed as it comes in."""
        s, n, n_o = k.scenario, self.n_draws, len(self.origins)
        ref = self.ref_expected.get(self.ref_of[s.name])
        streamed = ref is not None and s.name not in self.refs and self.keep_draws is False
        expected, new_placed, pair_placed = np.zeros(n), np.zeros(n), None
        o_out = np.zeros((n, n_o), dtype=np.int32)
        o_exp = None if streamed else np.zeros((n, n_o))
        displaced, row = (np.zeros(n), np.zeros(n_o)) if streamed else (None, None)
        s_out = np.zeros((n, len(self.schools)), dtype=np.int32)
        for d, o in enumerate(outs):  # draw by draw, each dropped once copied
            if isinstance(outs, list):
                outs[d] = None
            expected[d], new_placed[d] = o.expected, o.new_placed
            if k.pair_positions is not None:
                if pair_placed is None:
                    pair_placed = np.zeros((n, o.pair_placed.size), dtype=np.int32)
                pair_placed[d] = o.pair_placed
            o_out[d, k.rows] = o.origin_placed
            if streamed:  # as np.clip(ref - o_exp, 0, None).sum(axis=1), row by row
                row[k.rows] = o.origin_expected
                displaced[d] = np.clip(ref[d] - row, 0, None).sum()
            else:
                o_exp[d, k.rows] = o.origin_expected
            s_out[d, k.cols] = o.school_placed
            del o
        if after_draws is not None:
            after_draws()
        if pair_placed is not None:
            from studentflow.scenarios.drill import scenario_tables

            self.drill[i] = scenario_tables(s.name, k.rows, k.cols, k.pair_positions,
                                            pair_placed, o_out, self.obs_origin,
                                            self.relief, self.origins.index, self.schools.index)
            del pair_placed
        placed = o_out.sum(axis=1).astype(float)
        safe = np.where(placed > 0, placed, np.nan)
        rec = pd.DataFrame({
            "scenario": s.name, "draw": np.arange(n), "placed": placed,
            "placed_expected": expected, "vs_observed": placed - self.observed,
            "vs_observed_pct": 100 * (placed - self.observed) / max(self.observed, 1),
            "share_congested": np.nan_to_num(o_out[:, self.feeds].sum(axis=1) / safe),
            "share_new_pairs": np.nan_to_num(new_placed / safe),
            "slot_utilisation": placed / max(k.caps.sum(), 1),
        })
        if self.relief is not None:
            is_base = s.name == self.baseline
            metrics, self.jhs_rows[i], by_jhs = relief_metrics(s.name, o_out, self.obs_origin, self.relief,
                                                               self.base_by_jhs, is_baseline=is_base)
            self.base_by_jhs = by_jhs if is_base else self.base_by_jhs
            rec = rec.assign(**metrics)
        cost_metrics, self.base_costs = costs.draw_costs(s_out, o_out, self.amount, k.school_extra,
                                                         k.origin_extra, k.caps, self.base_costs)
        self.records[i], self.kept[i] = rec.assign(**cost_metrics), k
        self.esc_rows[i] = esc_table(s.name, s_out, k.caps, self.schools.index)
        # displaced: on expected (unrounded) placements, so rounding noise is not counted
        if s.name in self.refs:
            self.ref_expected[s.name] = o_exp
        if streamed:
            self.displaced[s.name] = displaced
        else:
            self.waiting[s.name] = o_exp
        for name in [m for m in self.waiting if self.ref_of[m] in self.ref_expected]:
            ref = self.ref_expected[self.ref_of[name]]
            self.displaced[name] = np.clip(ref - self.waiting.pop(name), 0, None).sum(axis=1)
        keep = self.keep_draws
        self.arrays[i] = (_keep_array(keep, o_out, i, "origin_placed"),
                          _keep_array(keep, s_out, i, "school_placed"),
                          _keep_array(keep, o_exp, i, "origin_expected"))

    def result(self, scenarios, seed: int, params: pd.DataFrame) -> ScenarioResult:
        """Every scenario paired with the baseline draw by draw, summarised."""
        idx, n_s, base = range(len(scenarios)), len(scenarios), self.baseline
        per_draw = pd.concat([self.records[i] for i in idx], ignore_index=True)
        base_placed = per_draw.loc[per_draw["scenario"] == base, "placed"].to_numpy()
        per_draw["vs_baseline"] = per_draw["placed"] - np.tile(base_placed, n_s)
        per_draw["vs_baseline_pct"] = 100 * per_draw["vs_baseline"] / np.tile(np.maximum(base_placed, 1), n_s)
        if "relieved" in per_draw:  # paired by draw: the scenario's own effect, not draw noise
            base_relieved = per_draw.loc[per_draw["scenario"] == base, "relieved"].to_numpy()
            per_draw["relieved_vs_baseline"] = per_draw["relieved"] - np.tile(base_relieved, n_s)
        per_draw["displaced"] = np.concatenate([self.displaced[s.name] for s in scenarios]).astype(float)
        aisle_before = None
        if self.relief is not None:
            jhs = self.relief[2]
            aisle_before = float(np.clip(jhs["jhs_enrolment"] - jhs["jhs_seats"], 0, None).sum())
        per_draw = costs.relief_costs(per_draw, base, aisle_before)

        table = costs.summarise_ratios(summarise_draws(per_draw), per_draw)
        table.insert(1, "description", [s.description for s in scenarios])
        table.insert(2, "levers", [s.summary().split(": ", 1)[1] for s in scenarios])
        table.insert(3, "slots", [int(self.kept[i].caps.sum()) for i in idx])
        table.insert(4, "observed_esc", self.observed)
        if self.relief is not None:
            jhs = self.relief[2]
            table.insert(5, "aisle_before", float(np.clip(jhs["jhs_enrolment"] - jhs["jhs_seats"], 0, None).sum()))
            table.insert(6, "congested_before", int((jhs["jhs_enrolment"] / jhs["jhs_seats"] > 1).sum()))

        def draw_dict(j):
            return {} if self.keep_draws is False else {s.name: self.arrays[i][j] for i, s in enumerate(scenarios)}

        return ScenarioResult(
            scenarios=tuple(scenarios), baseline=base, draws=self.n_draws, seed=seed,
            observed_esc=self.observed, table=table, per_draw=per_draw,
            esc_schools=pd.concat([self.esc_rows[i] for i in idx], ignore_index=True),
            public_jhs=(pd.concat([self.jhs_rows[i] for i in idx], ignore_index=True)
                        if self.jhs_rows else pd.DataFrame()),
            origin_ids=self.origins.index.to_numpy(), school_ids=self.schools.index.to_numpy(),
            origin_placed=draw_dict(0), school_placed=draw_dict(1), origin_expected=draw_dict(2),
            pools={s.name: self.kept[i].pools for i, s in enumerate(scenarios)},
            capacities={s.name: self.kept[i].caps for i, s in enumerate(scenarios)}, params=params,
            **self._drill_tables(idx),
        )

    def _drill_tables(self, idx) -> dict:
        """``esc_origins`` and ``jhs_destinations`` of the result, when the run kept them."""
        if not self.drill:
            return {}
        dest = [self.drill[i][1] for i in idx if self.drill[i][1] is not None]
        return {"esc_origins": pd.concat([self.drill[i][0] for i in idx], ignore_index=True),
                "jhs_destinations": pd.concat(dest, ignore_index=True) if dest else pd.DataFrame()}
