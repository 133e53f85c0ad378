"""Collinear and constant design columns, dropped the way R's ``lm`` and fixest do.

A design column is dropped when it lies in the span of the columns *kept before it*,
in formula order, up to a relative tolerance: earlier terms are kept, later ones go.
The test is a sequential Cholesky factorisation of the column-scaled cross-product
``D^-1 X'X D^-1`` (``D`` the column norms; k × k, so cheap at millions of rows): column
j's squared residual norm after projection on the kept columns, relative to its own,
is ``r_j``; ``r_j <= tol`` drops it (fixest's ``collin.tol`` is 1e-10 on the same
quantity). A dropped column contributes 0 to every prediction (the fit is the fit
without it); its reason names the earlier columns it is a combination of, or says it
has no variation (constant in the estimation sample, or all zero, e.g. a region
dummy when the sample holds one region only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DroppedTerm", "collinear_columns", "COLLINEAR_TOL"]

#: Relative squared-residual tolerance below which a column counts as collinear.
COLLINEAR_TOL = 1e-10


@dataclass(frozen=True)
class DroppedTerm:
    """A design column left out of the fit.

    ``column`` is the formula engine's name (``C(destination_region, …)[T.Region VIII]``),
    ``label`` the study's (``destination region Region VIII``), ``reason`` why
    (``collinear with origin region Region VIII`` or ``no variation …``).
    """

    column: str
    label: str
    reason: str

    def summary(self) -> str:
        """One line: label (column, when it differs): reason."""
        name = self.label if self.label == self.column else f"{self.label} ({self.column})"
        return f"{name}: {self.reason}"


def _label(name: str) -> str:
    from studentflow.gravity.metrics import term_label

    return term_label(str(name))


def _no_variation(col: np.ndarray) -> str:
    if col.size == 0 or not np.any(col):
        return "no variation (always 0 in the estimation sample, e.g. a level or region absent from it)"
    return f"no variation (always {col[0]:g} in the estimation sample)"


def collinear_columns(X: np.ndarray, names, tol: float = COLLINEAR_TOL, max_named: int = 4):
    """Columns of ``X`` that are linear combinations of earlier kept columns.

    Parameters
    ----------
    X : numpy.ndarray
        n × k design (rows: estimation sample).
    names : sequence of str
        Column names, in design (formula) order.
    tol : float
        Relative squared-residual tolerance (see the module text).
    max_named : int
        At most this many earlier columns are named in a reason.

    Returns
    -------
    (keep, dropped)
        Boolean mask of the kept columns, and a tuple of :class:`DroppedTerm` in
        design order.
    """
    X = np.asarray(X, dtype=float)
    names = [str(n) for n in names]
    k = X.shape[1]
    gram = X.T @ X
    norms = np.sqrt(np.maximum(np.diag(gram), 0.0))
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    G = gram * np.outer(scale, scale)
    keep = np.zeros(k, dtype=bool)
    L = np.zeros((k, k))  # Cholesky factor of G over the kept columns (rows/cols in kept order)
    kept: list[int] = []
    dropped = []
    for j in range(k):
        if norms[j] == 0:
            dropped.append(DroppedTerm(names[j], _label(names[j]), _no_variation(X[:, j])))
            continue
        m = len(kept)
        g = G[kept, j]
        v = np.linalg.solve(L[:m, :m], g) if m else np.zeros(0)  # L v = g (lower triangular)
        r = G[j, j] - float(v @ v)
        if r > tol * G[j, j]:
            L[m, :m] = v
            L[m, m] = np.sqrt(r)
            kept.append(j)
            keep[j] = True
            continue
        col = X[:, j]
        if np.all(col == col[0]):
            reason = _no_variation(col)
        else:
            b = np.linalg.solve(L[:m, :m].T, v)  # projection coefficients (scaled columns)
            big = [kept[i] for i in np.argsort(-np.abs(b), kind="stable") if abs(b[i]) > 1e-6]
            big = sorted(big)  # formula order
            named = ", ".join(_label(names[i]) for i in big[:max_named])
            more = f" and {len(big) - max_named} more" if len(big) > max_named else ""
            reason = f"collinear with {named}{more}"
        dropped.append(DroppedTerm(names[j], _label(names[j]), reason))
    return keep, tuple(dropped)
