"""Benchmark and simulation study of the gravity estimator (not run by the tests).

1. Estimator core: fit time of statsmodels' NegativeBinomial (the reference) and of this
   package's Newton (:func:`studentflow.gravity.newton.fit_counts`) on a prebuilt design,
   10^5 and 10^6 synthetic pairs (zeros="include", clustered SEs), their ratio and the
   largest relative difference of the estimates. Baseline: statsmodels, same process.
2. End to end: ``fit_gravity(..., method="statsmodels")`` (formula engine's design,
   statsmodels' optimiser, clustered SEs, null model: the baseline) against the default
   fast path (design computed directly, Newton), for zeros="include" and "drop"; the
   ratio and the largest relative differences of the coefficients, their standard errors
   and alpha. The default zeros="truncate" is timed on the fast path only (statsmodels'
   truncated NB re-creates a model for every score evaluation: minutes at 10^5 pairs).
3. Coverage study: share of replicates whose 95 % CI holds the true coefficient.
4. Bias table: zeros = drop / truncate / include on the same synthetic tables.

Usage::

    PYTHONPATH=. python scripts/bench_gravity.py [--sizes 100000 1000000] [--reps 200]
        [--parts core e2e coverage bias]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd

from studentflow.gravity import STUDY_FORMULA, GravityWarning, fit_gravity
from studentflow.gravity.metrics import term_key, term_label
from studentflow.synth import STUDY_ALPHA
from studentflow.synth.pairs import make_pairs


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_speed(sizes: list[int], dests: int = 40) -> None:
    """Time the reference estimator (statsmodels) against the fast one, same design."""
    import statsmodels.api as sm
    from statsmodels.formula._manager import FormulaManager

    from studentflow.gravity.newton import fit_counts

    print("== estimator core: statsmodels NegativeBinomial (baseline) vs fast Newton, "
          "prebuilt design ==")
    print(f"{'pairs':>9} {'stage':<26} {'statsmodels s':>14} {'fast s':>9} {'ratio':>7} "
          f"{'max rel diff coef':>18} {'max rel diff SE':>16}")
    for n in sizes:
        df = make_pairs(n // dests, dests, seed=1)
        # (a) the estimator alone, on a prebuilt design
        y, X = FormulaManager().get_matrices(STUDY_FORMULA, df, eval_env={"np": np},
                                             pandas=True)
        y = y.iloc[:, 0].to_numpy(float)
        g = pd.factorize(df["origin_id"])[0]
        kw = {"cov_type": "cluster", "cov_kwds": {"groups": g}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref, t_ref = _timed(lambda: sm.NegativeBinomial(y, X, loglike_method="nb2").fit(
                method="newton", maxiter=100, disp=0, **kw))
            ref_bfgs, t_bfgs = _timed(lambda: sm.NegativeBinomial(
                y, X, loglike_method="nb2").fit(disp=0, maxiter=1000, **kw))
        fast, t_fast = _timed(lambda: fit_counts(y, X.to_numpy(float), family="negbin",
                                                 groups=g))
        p_ref = np.asarray(ref.params)
        p_fast = np.append(fast.beta, fast.alpha)
        se_fast = np.sqrt(np.diag(fast.cov))
        d_coef = np.max(np.abs(p_fast - p_ref) / np.abs(p_ref))
        d_se = np.max(np.abs(se_fast - np.asarray(ref.bse)) / np.asarray(ref.bse))
        print(f"{n:>9,d} {'estimator (newton)':<26} {t_ref:>14.2f} {t_fast:>9.2f} "
              f"{t_fast / t_ref:>7.3f} {d_coef:>18.2e} {d_se:>16.2e}")
        d_bfgs = np.max(np.abs(p_fast - np.asarray(ref_bfgs.params)) / np.abs(p_ref))
        print(f"{n:>9,d} {'estimator (sm default bfgs)':<26} {t_bfgs:>14.2f} {t_fast:>9.2f} "
              f"{t_fast / t_bfgs:>7.3f} {d_bfgs:>18.2e} {'':>16}")


def _max_rel(a, b) -> float:
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    keep = b != 0
    if not keep.any():
        return float(np.max(np.abs(a - b)))
    return float(np.max(np.abs(a[keep] - b[keep]) / np.abs(b[keep])))


def bench_end_to_end(sizes: list[int], dests: int = 40) -> None:
    """fit_gravity end to end: statsmodels (baseline) against the default fast path."""
    print("\n== fit_gravity end to end (design, fit, clustered SEs, null model): "
          "method='statsmodels' (baseline) vs the default fast path ==")
    print(f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'pairs':>9} {'zeros':<9} {'rows fitted':>11} {'statsmodels s':>14} {'fast s':>8} "
          f"{'ratio':>7} {'max rel diff coef':>18} {'SE':>9} {'alpha':>9}")
    fit_gravity(make_pairs(50, dests, seed=1))  # imports and first-call set-up, untimed
    for n in sizes:
        df = make_pairs(n // dests, dests, seed=1)
        for zeros in ("include", "drop"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GravityWarning)
                ref, t_ref = _timed(lambda: fit_gravity(df, zeros=zeros, method="statsmodels"))
                fast, t_fast = _timed(lambda: fit_gravity(df, zeros=zeros))
            d_alpha = (_max_rel(fast.alpha, ref.alpha) if ref.alpha
                       else abs(fast.alpha - ref.alpha))
            print(f"{n:>9,d} {zeros:<9} {fast.nobs:>11,d} {t_ref:>14.2f} {t_fast:>8.2f} "
                  f"{t_fast / t_ref:>7.3f} {_max_rel(fast.params, ref.params):>18.2e} "
                  f"{_max_rel(fast.bse, ref.bse):>9.2e} {d_alpha:>9.2e}", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GravityWarning)
            fast, t_fast = _timed(lambda: fit_gravity(df))
        print(f"{n:>9,d} {'truncate':<9} {fast.nobs:>11,d} {'(not run)':>14} {t_fast:>8.2f}",
              flush=True)


def coverage_study(reps: int, n_origins: int = 100, dests: int = 40) -> None:
    """95 % CI coverage of every coefficient over ``reps`` synthetic replicates."""
    print(f"\n== coverage of 95 % CIs: {reps} replicates of {n_origins} x {dests} pairs, "
          f"NB2 zeros='include', SE clustered by origin ==")
    hits, a_hits, t0 = [], [], time.perf_counter()
    for s in range(reps):
        df = make_pairs(n_origins, dests, seed=1000 + s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GravityWarning)
            m = fit_gravity(df, zeros="include", method="fast")
        truth = pd.Series({n: df.attrs["params"][term_key(n)] for n in m.params.index})
        ci = m.conf_int()
        hits.append(((ci["lower"] <= truth) & (truth <= ci["upper"])).rename(s))
        a_se = np.sqrt(m.cov_params.loc["alpha", "alpha"])
        a_hits.append(abs(m.alpha - STUDY_ALPHA) <= 1.959964 * a_se)
    cov = pd.concat(hits, axis=1).mean(axis=1)
    se_mc = np.sqrt(0.95 * 0.05 / reps)
    for name, c in cov.items():
        print(f"  {term_label(name):<34} {c * 100:6.1f} %")
    print(f"  {'alpha (dispersion)':<34} {np.mean(a_hits) * 100:6.1f} %")
    print(f"  (nominal 95 %, Monte Carlo SE {se_mc * 100:.1f} points; "
          f"{time.perf_counter() - t0:.1f} s)")


def bias_table(reps: int, n_origins: int = 300, dests: int = 40) -> None:
    """Mean estimate and bias (in SE units) by zeros handling, plus predicted totals."""
    print(f"\n== zeros handling: mean over {reps} replicates of {n_origins} x {dests} "
          f"pairs (truth: NB2 over all candidate pairs) ==")
    rows = []
    for s in range(reps):
        df = make_pairs(n_origins, dests, seed=2000 + s)
        for zeros in ("drop", "truncate", "include"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GravityWarning)
                m = fit_gravity(df, zeros=zeros, method="fast")
            truth = pd.Series({n: df.attrs["params"][term_key(n)] for n in m.params.index})
            for n in m.params.index:
                rows.append({"zeros": zeros, "term": term_label(n), "est": m.params[n],
                             "truth": truth[n], "z": (m.params[n] - truth[n]) / m.bse[n]})
            rows.append({"zeros": zeros, "term": "alpha", "est": m.alpha,
                         "truth": STUDY_ALPHA, "z": np.nan})
            rows.append({"zeros": zeros, "term": "predicted / true total flow",
                         "est": m.predict(df).sum() / df["mu"].sum(), "truth": 1.0,
                         "z": np.nan})
    tab = pd.DataFrame(rows)
    order = list(dict.fromkeys(tab["term"]))
    est = tab.pivot_table(index="term", columns="zeros", values="est").loc[order]
    z = tab.pivot_table(index="term", columns="zeros", values="z", dropna=False)
    truth = tab.groupby("term")["truth"].mean().loc[order]
    out = pd.DataFrame({"truth": truth})
    for zeros in ("drop", "truncate", "include"):
        out[f"{zeros} mean"] = est[zeros]
        out[f"{zeros} bias/SE"] = z[zeros].reindex(order) if zeros in z else np.nan
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print(out.to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--reps", type=int, default=200, help="coverage replicates (>= 100)")
    ap.add_argument("--bias-reps", type=int, default=30)
    ap.add_argument("--parts", nargs="+", choices=("core", "e2e", "coverage", "bias"),
                    default=["core", "e2e", "coverage", "bias"])
    args = ap.parse_args()
    if "core" in args.parts:
        bench_speed(args.sizes)
    if "e2e" in args.parts:
        bench_end_to_end(args.sizes)
    if "coverage" in args.parts:
        coverage_study(args.reps)
    if "bias" in args.parts:
        bias_table(args.bias_reps)


if __name__ == "__main__":
    main()
