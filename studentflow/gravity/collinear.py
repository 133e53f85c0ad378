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

:func:`separated_columns` applies the same rule to the rows above the lowest count the
likelihood allows (≥ 2 learners in a zero-truncated fit, ≥ 1 when zeros are fitted): a
column told apart from earlier ones only on the other rows, all on one side, has no
finite estimate (separation) and is dropped too; at national scale these are the
destination dummies that differ from the origin ones on a few one-learner pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DroppedTerm", "collinear_columns", "separated_columns", "COLLINEAR_TOL"]

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


def _no_variation(col: np.ndarray, name: str) -> str:
    level = "[T." in name  # a category dummy
    if col.size == 0 or not np.any(col):
        return ("no variation (no row of the estimation sample has this level)" if level
                else "no variation (always 0 in the estimation sample)")
    if level and col[0] == 1:
        return "no variation (every row of the estimation sample has this level, e.g. one region only)"
    return f"no variation (always {col[0]:g} in the estimation sample)"


def _scaled_gram(X: np.ndarray):
    gram = X.T @ X
    norms = np.sqrt(np.maximum(np.diag(gram), 0.0))
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    return gram * np.outer(scale, scale), norms, scale


def _named(names, kept, b, max_named: int) -> str:
    big = sorted(kept[i] for i in range(len(kept)) if abs(b[i]) > 1e-6)  # formula order
    named = ", ".join(_label(names[i]) for i in big[:max_named])
    return named + (f" and {len(big) - max_named} more" if len(big) > max_named else "")


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
    G, norms, _ = _scaled_gram(X)
    keep = np.zeros(k, dtype=bool)
    L = np.zeros((k, k))  # Cholesky factor of G over the kept columns (rows/cols in kept order)
    kept: list[int] = []
    dropped = []
    for j in range(k):
        if norms[j] == 0:
            dropped.append(DroppedTerm(names[j], _label(names[j]), _no_variation(X[:, j], names[j])))
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
            reason = _no_variation(col, names[j])
        else:
            b = np.linalg.solve(L[:m, :m].T, v)  # projection coefficients (scaled columns)
            reason = f"collinear with {_named(names, kept, b, max_named)}"
        dropped.append(DroppedTerm(names[j], _label(names[j]), reason))
    return keep, tuple(dropped)


def separated_columns(X: np.ndarray, names, high: np.ndarray, low_count: int,
                      tol: float = COLLINEAR_TOL, max_named: int = 4):
    """Columns told apart from earlier ones only by rows the likelihood pushes to μ → 0.

    A count model has no finite estimate in a direction ``d`` of the coefficients when
    ``X d`` is 0 on every row above the lowest count the likelihood allows
    (``high``: rows with ≥ 1 learner when zeros are fitted, ≥ 2 in a zero-truncated fit)
    and of one sign on the others: moving along ``d`` only lowers μ where the lowest
    count was observed, which always raises the likelihood (separation; e.g. a
    destination dummy that differs from the origin one on a few cross-border pairs each
    carrying 1 learner). Such a column (the later one, formula order) is dropped; one
    whose distinguishing rows take both signs is identified and kept.

    Parameters
    ----------
    X : numpy.ndarray
        n × k design, no collinear columns (:func:`collinear_columns` first).
    names : sequence of str
        Column names.
    high : numpy.ndarray of bool
        Rows above the lowest count.
    low_count : int
        The lowest count (learners), for the reason text.

    Returns
    -------
    (keep, dropped)
        As for :func:`collinear_columns`.
    """
    X = np.asarray(X, dtype=float)
    names = [str(n) for n in names]
    k = X.shape[1]
    G, norms, scale = _scaled_gram(X[high])
    keep = np.ones(k, dtype=bool)
    L = np.zeros((k, k))
    kept: list[int] = []  # columns of full rank on the high rows
    dropped = []
    for j in range(k):
        m = len(kept)
        v = np.linalg.solve(L[:m, :m], G[kept, j]) if m else np.zeros(0)
        r = G[j, j] - float(v @ v)
        if norms[j] > 0 and r > tol * G[j, j]:
            L[m, :m], L[m, m] = v, np.sqrt(r)
            kept.append(j)
            continue
        b = np.linalg.solve(L[:m, :m].T, v) if m else np.zeros(0)
        # the direction telling column j apart, on every row (0 on the high rows)
        d = X[:, j] * (scale[j] if norms[j] > 0 else 1.0) - (X[:, kept] * scale[kept]) @ b
        d[np.abs(d) <= 1e-8 * max(float(np.abs(d).max()), 1e-300)] = 0.0
        if (d > 0).any() and (d < 0).any():
            continue  # both signs: identified by the low rows, kept (not used as a basis)
        keep[j] = False
        named = _named(names, kept, b, max_named) if m else ""
        n = int((d != 0).sum())
        rows = f"the {n:,} pairs" if n != 1 else "the 1 pair"
        what = f"not identified apart from {named}: {rows} telling them apart" if named \
            else f"not identified: {rows} where it is not 0"
        dropped.append(DroppedTerm(names[j], _label(names[j]), (
            f"{what} {'all carry' if n != 1 else 'carries'} {low_count} "
            f"learner{'s' if low_count != 1 else ''} (separation: its "
            f"estimate would run to ±inf)")))
    return keep, tuple(dropped)
