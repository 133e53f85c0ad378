"""The two school years of a backtest and the test year's levers, without its outcomes.

What the prediction of the test year may use
--------------------------------------------
* **Levers** (known before the year starts): the test year's contracted ESC slots,
  subsidy amounts and tiers, tuition, ESC ratings and which schools take part (schools
  that opened have no train year and get calibration factor 1; schools that closed have
  no slots).
* **Pools**: either the test year's actual Grade 7 learners per origin (``"actual"``,
  which isolates the model's error) or the pools forecast from the train year's Grade 6
  (``"forecast"``, :func:`studentflow.scenarios.cohort.forecast_pools`).
* **Candidate pairs**: the train year's pair table rebuilt on the test year's schools:
  every pair learners took in the train year, plus the study's new pairs (origins that fed
  a congested public JHS in the train year × ESC schools with test-year contracted slots
  within the radius). Origins first seen in the test year are outside the prediction;
  their observed placements count as error.

Never used: the test year's billed slots and its learner flows (beyond each origin's
total with ``"actual"`` pools).

Capacity rule
-------------
The status quo caps each school at its billed slots, an outcome. The test year's capacity
of school j is its test-year contracted slots × its train-year billing ratio
``billed_j / contracted_j`` (learners, rounded); a school without contracted slots in the
train year (it opened, or joined ESC) takes the train year's pooled ratio
``Σ billed / Σ contracted``. Two identical years thus give back the train year's capacity,
and added slots raise it in proportion.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.errors import DataError

__all__ = ["MissingYears", "Years", "resolve_years", "lever_pairs", "year_capacity", "observed_pairs",
           "YEAR_KINDS"]

#: Year-bound kinds a backtest needs in both years (the multi-year manifest's contract).
YEAR_KINDS = ("enrollment", "transitions", "esc_beneficiaries", "esc_slots", "tuition", "subsidy_rates")


class MissingYears(DataError):
    """Fewer than two school years: nothing to backtest (``studentflow backtest`` exits 1)."""


@dataclasses.dataclass(frozen=True)
class Years:
    """The train and test bundles, the years seen up to train and their truth folders."""

    train: object
    test: object
    train_year: str
    test_year: str
    history: tuple = ()
    truth_train: Path | None = None
    truth_test: Path | None = None


def _previous(year: str) -> str:
    try:
        first = int(str(year)[:4])
    except ValueError:
        return "the year before"
    return f"{first - 1}-{first}"


def _truth_dir(folder, year) -> Path | None:
    """A synthetic year's truth folder: ``truth/years.json``'s entry, else ``truth/<year>/``."""
    if folder is None or year is None:
        return None
    import json

    path = Path(folder) / "truth" / str(year)
    try:
        path = Path(folder) / json.loads((Path(folder) / "truth" / "years.json").read_text("utf-8"))["truth"][year]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return path if any((path / n).is_file() for n in ("pairs.csv", "pairs.csv.gz")) else None


def resolve_years(data=None, train=None, test=None) -> Years:
    """The train and test years of a backtest.

    Parameters
    ----------
    data : path, Panel or None
        A multi-year ``manifest.toml`` (or its folder; default the bundled sample) or a
        ``Panel``. Ignored when ``train`` and ``test`` are both bundles.
    train, test : str or Bundle, optional
        School years ("2022-2023") of ``data``, or bundles; default the two latest years.

    Raises
    ------
    DataError
        With fewer than two school years, naming the kinds missing for the year before.
    """
    if train is not None and test is not None and not isinstance(train, str) and not isinstance(test, str):
        ty = getattr(train, "school_year", None) or "train"
        sy = getattr(test, "school_year", None) or "test"
        return Years(train, test, str(ty), str(sy), (train,))
    folder = None
    if hasattr(data, "years") and hasattr(data, "bundles"):
        panel = data
        folder = getattr(panel, "folder", None)
    else:
        from studentflow.ingest import load_panel
        from studentflow.ingest.manifest import manifest_path
        from studentflow.paths import sample_manifest

        path = manifest_path(data) if data is not None else sample_manifest()
        folder = path.parent
        panel = load_panel(path)
    years = tuple(panel.years)
    where = f"{folder / 'manifest.toml'}" if folder is not None else "the panel"
    if len(years) < 2:
        only = years[0] if years else None
        raise MissingYears(
            f"{where}: backtest needs two school years, found {'only ' + only if only else 'none'}; "
            f"add sources of kinds {', '.join(YEAR_KINDS)} with school_year = \"{_previous(only)}\"")
    test = str(test) if test is not None else years[-1]
    train = str(train) if train is not None else years[years.index(test) - 1] if test in years else years[-2]
    for label, y in (("--train", train), ("--test", test)):
        if y not in years:
            raise DataError(f"{where}: {label} {y}: no such school year (years: {', '.join(years)})")
    if not years.index(train) < years.index(test):
        raise DataError(f"{where}: --train {train} must come before --test {test}")
    history = tuple(panel.bundles[y] for y in years if years.index(y) <= years.index(train))
    return Years(panel.bundles[train], panel.bundles[test], train, test, history,
                 _truth_dir(folder, train), _truth_dir(folder, test))


def _esc(schools: pd.DataFrame) -> pd.DataFrame:
    s = schools.set_axis(schools.index.astype(str))
    return s.loc[s["esc"].fillna(False).astype(bool)]


def year_capacity(train, test) -> tuple[pd.Series, pd.Series, float]:
    """Test-year capacity per ESC school (learners) by the module's rule.

    Returns
    -------
    (pandas.Series, pandas.Series, float)
        Capacity and billing ratio per test-year ESC school (index ``school_id``), and the
        train year's pooled ratio used for schools without a train-year contract.
    """
    tr = _esc(train.schools)
    contracted = pd.to_numeric(tr["esc_slots"], errors="coerce").fillna(0).astype(float)
    billed = pd.to_numeric(tr["esc_slots_billed"], errors="coerce").fillna(0).astype(float)
    pooled = float(billed.sum() / contracted.sum()) if contracted.sum() > 0 else 1.0
    ratio = (billed / contracted.where(contracted > 0)).dropna()
    te = _esc(test.schools)
    slots = pd.to_numeric(te["esc_slots"], errors="coerce").fillna(0).astype(float)
    r = ratio.reindex(slots.index).fillna(pooled).clip(lower=0)
    return np.round(slots * r).rename("capacity"), r.rename("billing_ratio"), pooled


def _union(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """``a`` plus the rows of ``b`` whose index ``a`` lacks."""
    extra = b.loc[~b.index.astype(str).isin(a.index.astype(str))]
    return pd.concat([a, extra]) if len(extra) else a


def lever_bundle(train, test):
    """A bundle holding the test year's schools and levers with the train year's flows.

    Schools seen only in the train year (closed before the test year) keep their row,
    out of ESC (no slots), so that their pairs still have coordinates and covariates.
    """
    gone = train.schools.loc[~train.schools.index.astype(str).isin(test.schools.index.astype(str))].copy()
    if len(gone):
        gone["esc"] = False
        gone["esc_slots"] = 0
        gone["esc_slots_billed"] = 0
    schools = pd.concat([test.schools, gone]) if len(gone) else test.schools
    return dataclasses.replace(test, schools=schools, flows=train.flows,
                               subsidy=_union(test.subsidy, train.subsidy), areas=_union(test.areas, train.areas))


def lever_pairs(train, test, *, radius_km: float = 5.0, max_km: float | None = None) -> pd.DataFrame:
    """The test year's PairTable without its outcomes (module text).

    ``esc_beneficiaries`` holds the *train* year's learners on each pair (persistence);
    ``origin_pool`` the test year's actual pools (0 for an origin absent in it);
    ``destination_slots`` the test year's contracted slots and ``destination_billed`` the
    capacity of :func:`year_capacity` (learners). Only pairs into the test year's ESC
    schools with a known net cost are kept.
    """
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances
    from studentflow.scenarios.cohort import origin_pools

    levers = lever_bundle(train, test)
    pairs = build_pairs(levers, compute_distances(levers, max_km=max_km), radius_km=radius_km)
    capacity, _, _ = year_capacity(train, test)
    pools = origin_pools(test)
    pairs["origin_pool"] = pools.reindex(pairs["origin_id"]).fillna(0).to_numpy().astype(np.int64)
    pairs["destination_billed"] = capacity.reindex(pairs["destination_id"]).fillna(0).to_numpy().astype(np.int64)
    # only the test year's ESC schools take ESC learners; a pair without a net cost cannot be predicted
    keep = pairs["destination_id"].isin(capacity.index) & pairs["net_cost_k"].notna()
    out = pairs.loc[keep].reset_index(drop=True)
    out.attrs = dict(pairs.attrs)
    return out


def observed_pairs(bundle) -> pd.Series:
    """ESC beneficiaries per (origin_id, destination_id) with at least one, learners."""
    f = bundle.flows
    b = pd.to_numeric(f["esc_beneficiaries"], errors="coerce").fillna(0)
    keys = [f["origin_id"].astype(str).rename("origin_id"), f["destination_id"].astype(str).rename("destination_id")]
    out = b.groupby(keys).sum()
    return out[out > 0].astype(float)
