"""Text summary of a fitted gravity model (:meth:`GravityModel.summary`)."""

from __future__ import annotations

import numpy as np

from studentflow.gravity import metrics as gm

__all__ = ["model_summary", "FAMILY_NAME", "ZEROS_NAME"]

FAMILY_NAME = {"negbin": "NB2 (negative binomial, Var = μ + αμ²)", "poisson": "Poisson"}
ZEROS_NAME = {
    "drop": "drop (positive flows only, as the study)",
    "truncate": "truncate (zero-truncated, positive flows)",
    "include": "include (all candidate pairs)",
}


def model_summary(self) -> str:
    """A statsmodels-like text summary of a GravityModel with the study's term names,
    and a section naming each dropped term and why."""
    from scipy import stats  # lazily: 0.4 s of import, not needed before the fit

    cov = (f"cluster ({self.cluster}, {self.n_clusters} clusters)" if self.cluster
           else "model-based")
    left = [
        ("Dep. variable:", self.formula.split("~")[0].strip()),
        ("Family:", FAMILY_NAME[self.family].split(" (")[0]),
        ("Zeros:", self.zeros),
        ("Method:", self.method),
        ("Covariance:", cov),
        ("Converged:", "yes" if self.converged else "NO"),
    ]
    right = [
        ("No. observations:", f"{self.nobs:d}"),
        ("Log-likelihood:", f"{self.llf:.2f}"),
        ("AIC:", f"{self.aic:.2f}"),
        ("BIC:", f"{self.bic:.2f}"),
        ("Pseudo R² (McFadden):", f"{self.pseudo_r2:.4f}"),
        ("alpha:", "—" if self.family != "negbin"
         else f"{self.alpha:.4f}" if self.alpha > 0 else "0 (boundary)"),
    ]
    width = 96
    lines = [f"Gravity model results: {FAMILY_NAME[self.family]}".center(width),
             "=" * width]
    for (a, b), (c, d) in zip(left, right):
        lines.append(f"{a:<16}{b:<36}{c:<24}{d:>20}")
    lines.append(f"Zero flows: {ZEROS_NAME[self.zeros]}")
    lines.append("=" * width)
    ci = self.conf_int()
    lines.append(f"{'':<36}{'coef':>10}{'std err':>10}{'z':>9}{'P>|z|':>8}"
                 f"{'[0.025':>11}{'0.975]':>11}")
    lines.append("-" * width)
    rows = [(gm.term_label(n), self.params[n], self.bse[n], ci.loc[n, "lower"],
             ci.loc[n, "upper"]) for n in self.params.index]
    if self.family == "negbin":
        s = float(np.sqrt(self.cov_params.loc["alpha", "alpha"]))
        z = stats.norm.ppf(0.975)
        rows.append(("alpha (dispersion)", self.alpha, s, self.alpha - z * s,
                     self.alpha + z * s))
    for label, b, s, lo, hi in rows:
        if s == 0 and label.startswith("alpha"):
            lines.append(f"{label:<36}{b:>10.4f}  on the boundary: no overdispersion "
                         f"(the fit is Poisson's)")
            continue
        t = b / s if s > 0 else np.nan
        p = 2 * stats.norm.sf(abs(t))
        lines.append(f"{label[:35]:<36}{b:>10.4f}{s:>10.4f}{t:>9.2f}{p:>8.3f}"
                     f"{lo:>11.4f}{hi:>11.4f}")
    lines.append("=" * width)
    dropped = getattr(self, "dropped", ())
    if dropped:
        lines.append(f"Dropped terms ({len(dropped)}; not estimated, they contribute 0 to predictions):")
        lines.extend(f"  {d.label}: {d.reason}" for d in dropped)
        lines.append("=" * width)
    try:
        r, se = self.elasticity_ratio()
        lines.append(f"Distance / net-cost elasticity ratio: {r:.2f} (delta-method SE "
                     f"{se:.2f}); the study reports about 4.1.")
    except ValueError:
        pass
    return "\n".join(lines)
