"""Per-school drill-down from a finished run's output folder (``studentflow explain``).

:func:`explain` reads the tables ``studentflow run`` wrote (no re-run): for a public JHS,
``public_jhs.csv`` and ``jhs_destinations.csv.gz`` (where the Grade 7 learners it receives
today go under each scenario: stay, or which ESC school); for an ESC school,
``esc_schools.csv`` and ``esc_origins.csv.gz`` (where its placed learners come from). Every
figure is a mean over the run's Monte Carlo draws with its 95 % interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from studentflow.errors import DataError

__all__ = ["Explanation", "explain"]

_IDS = ("school_id", "origin_id", "destination_id")


@dataclass(frozen=True)
class Explanation:
    """One school's drill-down.

    Attributes
    ----------
    school_id : str
    kind : {"public JHS", "ESC school"}
    label : dict
        name, municipality, province, region, sector.
    overview : pandas.DataFrame
        One row per scenario: the school's line of ``public_jhs.csv`` / ``esc_schools.csv``.
    flows : pandas.DataFrame
        Public JHS: destination (``stays`` / ``ESC``), destination_id, name, learners
        mean / lo / hi per scenario. ESC school: origin_id, name, observed_esc, placed
        mean / lo / hi per scenario.
    run : dict
        The run's ``run.json`` (seed, draws, command).
    """

    school_id: str
    kind: str
    label: dict
    overview: pd.DataFrame
    flows: pd.DataFrame
    run: dict

    def summary(self, top: int = 8) -> str:
        """Plain text: per scenario the headline figures, then the ``top`` largest flows."""
        lab = self.label
        where = ", ".join(v for v in (lab.get("municipality"), lab.get("province"), lab.get("region")) if v)
        lines = [f"{self.kind} {self.school_id} {lab.get('name', '')} ({where}; {lab.get('sector', '')})",
                 f"run: {self.run.get('draws')} Monte Carlo draws, seed {self.run.get('seed')}; "
                 "figures are means with 95 % intervals [lo, hi]"]
        for scen, row in self.overview.set_index("scenario").iterrows():
            flows = self.flows[self.flows["scenario"] == scen]
            lines.append("")
            if self.kind == "public JHS":
                lines += self._jhs_lines(scen, row, flows, top)
            else:
                lines += self._esc_lines(scen, row, flows, top)
        return "\n".join(lines)

    @staticmethod
    def _jhs_lines(scen, row, flows, top) -> list[str]:
        stays = flows[flows["destination"] == "stays"]
        esc = flows[flows["destination"] == "ESC"]
        grade7 = float(stays["learners_mean"].sum() + row["relieved_mean"])
        out = [f"{scen}: {grade7:,.0f} Grade 7 learners enter today from modelled origins; "
               f"{row['relieved_mean']:,.1f} [{row['relieved_lo']:,.1f}, {row['relieved_hi']:,.1f}] leave for "
               f"ESC schools; seat utilisation {row['utilisation_before']:.2f} -> {row['utilisation_after_mean']:.2f}"]
        for _, r in stays.iterrows():
            out.append(f"  {'stays in this public JHS':<58} {r['learners_mean']:>9,.1f} "
                       f"[{r['learners_lo']:,.1f}, {r['learners_hi']:,.1f}]")
        for _, r in esc.head(top).iterrows():
            name = f"{r['destination_id']} {r.get('destination_name', '')} ({r.get('destination_municipality', '')})"
            out.append(f"  -> {name[:55]:<55} {r['learners_mean']:>9,.1f} [{r['learners_lo']:,.1f}, "
                       f"{r['learners_hi']:,.1f}]")
        if len(esc) > top:
            out.append(f"  -> {len(esc) - top} more ESC schools: {esc['learners_mean'].iloc[top:].sum():,.1f} learners")
        return out

    @staticmethod
    def _esc_lines(scen, row, flows, top) -> list[str]:
        out = [f"{scen}: placed {row['placed_mean']:,.1f} [{row['placed_lo']:,.0f}, {row['placed_hi']:,.0f}] of "
               f"{int(row['slots']):,} slots; full in {row['full_share']:.0%} of draws; "
               f"{int(flows['observed_esc'].sum()):,} ESC beneficiaries today"]
        for _, r in flows.head(top).iterrows():
            name = f"{r['origin_id']} {r.get('origin_name', '')} ({r.get('origin_municipality', '')})"
            out.append(f"  <- {name[:55]:<55} today {int(r['observed_esc']):>4}  placed {r['placed_mean']:>7,.1f} "
                       f"[{r['placed_lo']:,.0f}, {r['placed_hi']:,.0f}]")
        if len(flows) > top:
            out.append(f"  <- {len(flows) - top} more origin schools: {flows['placed_mean'].iloc[top:].sum():,.1f} "
                       "learners")
        return out


def _read(folder: Path, name: str) -> pd.DataFrame:
    from studentflow.report.names import unsafe_text

    path = folder / name
    if not path.is_file():
        raise DataError(f"{path}: not found; run `studentflow run --out {folder}` first (a run of this version "
                        "writes the drill-down tables)")
    return unsafe_text(pd.read_csv(path, dtype={c: str for c in _IDS}, keep_default_na=False,
                                   na_values=[""]))


def _label(row: pd.Series) -> dict:
    from studentflow.report.names import PLACE_COLUMNS

    return {c: ("" if pd.isna(row.get(c)) else str(row.get(c))) for c in PLACE_COLUMNS}


def explain(school_id, out_dir="studentflow-output") -> Explanation:
    """Drill down on one public JHS or ESC school in a finished run's output folder.

    Parameters
    ----------
    school_id : str or int
        6-digit DepEd school id (an int is zero-padded).
    out_dir : str or Path
        Output folder of ``studentflow run`` (holds ``run.json`` and the CSV tables).

    Returns
    -------
    Explanation
        ``print(explain(...).summary())`` shows it.

    Raises
    ------
    DataError
        No studentflow run in ``out_dir``, or the school is neither a public JHS nor an
        ESC school of the run.
    """
    from studentflow.report.provenance import read_run_json

    folder = Path(out_dir)
    run = read_run_json(folder)
    sid = f"{int(school_id):06d}" if str(school_id).strip().isdigit() else str(school_id).strip()
    jhs = _read(folder, "public_jhs.csv") if (folder / "public_jhs.csv").is_file() else pd.DataFrame()
    if not jhs.empty and (jhs["school_id"] == sid).any():
        overview = jhs[jhs["school_id"] == sid].reset_index(drop=True)
        dest = _read(folder, "jhs_destinations.csv.gz")
        flows = dest[dest["school_id"] == sid].reset_index(drop=True)
        return Explanation(sid, "public JHS", _label(overview.iloc[0]), overview, flows, run)
    esc = _read(folder, "esc_schools.csv")
    if (esc["school_id"] == sid).any():
        overview = esc[esc["school_id"] == sid].reset_index(drop=True)
        origins = _read(folder, "esc_origins.csv.gz")
        flows = origins[origins["school_id"] == sid].reset_index(drop=True)
        return Explanation(sid, "ESC school", _label(overview.iloc[0]), overview, flows, run)
    raise DataError(f"school {sid}: neither a public JHS with seats ({len(jhs['school_id'].unique()) if len(jhs) else 0} "
                    f"in public_jhs.csv) nor an ESC school ({esc['school_id'].nunique()} in esc_schools.csv) of the "
                    f"run in {folder}")
