"""Design matrices computed directly with numpy, for the formulas the gravity model uses.

patsy evaluates a design through Python-level machinery (level sniffing and an NA check
per value of every categorical): at 10^6 pairs building the study's design costs more
than the Newton fit itself. Here the n-row arithmetic is done with numpy and pandas
codes, and everything else is left to patsy, so that the result is patsy's design:

- the :class:`patsy.DesignInfo` (column names and order, the levels of each categorical,
  the contrast matrices) is patsy's own, built on a *skeleton* table with the same
  column dtypes and the same levels (one row per level, as patsy would sniff them);
- a numeric term (a column, or ``np.f(...)`` of one with ``f`` in :data:`UFUNCS`) is the
  same numpy ufunc applied to the column's values;
- a categorical term ``C(column, ...)`` is the term's contrast matrix indexed by each
  row's level code, as patsy builds it.

Designs with any other term (interactions, ``I(...)``, stateful transforms such as
``center``, a bare text column, nullable or Arrow-backed numeric dtypes) are not handled:
:func:`plan` returns None and the caller uses the formula engine. The tests check that
both give the same design on random pair tables.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["UFUNCS", "DirectPlan", "plan", "same_plan", "fit_design", "evaluate", "with_references"]

#: numpy functions a numeric term may apply to a column (nested calls allowed).
UFUNCS = frozenset({"log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "square",
                    "abs", "absolute"})


@dataclass(frozen=True)
class DirectPlan:
    """How to compute each column block of a design.

    ``terms`` holds one ``(kind, payload)`` per term, in design order: ``("one", None)``
    for the intercept, ``("num", expr)`` for a numeric term (``expr`` a parsed code) and
    ``("cat", (column, levels, contrast))`` for a categorical term.
    """

    info: Any  # the patsy DesignInfo
    terms: tuple
    slices: tuple  # column slice of each term


def _numeric_code(node: ast.AST) -> str | None:
    """The column a numeric factor's code reads, or None if the code is not supported."""
    if isinstance(node, ast.Name):
        return node.id
    if (isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords
            and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("np", "numpy") and node.func.attr in UFUNCS):
        return _numeric_code(node.args[0])
    return None


def _categorical_column(node: ast.AST) -> str | None:
    """The column of a ``C(column, ...)`` factor, or None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "C"
            and node.args and isinstance(node.args[0], ast.Name)):
        return node.args[0].id
    return None


def _factor_tree(factor) -> ast.AST | None:
    code = getattr(factor, "code", None)
    if not isinstance(code, str):
        return None
    try:
        return ast.parse(code, mode="eval").body
    except SyntaxError:
        return None


def _numpy_numeric(s: pd.Series) -> bool:
    return isinstance(s.dtype, np.dtype) and s.dtype.kind in "iuf"


def plan(info: Any) -> DirectPlan | None:
    """A direct plan for a patsy design, or None if some term needs the formula engine.

    Parameters
    ----------
    info : patsy.DesignInfo or other
        The right-hand-side design of a fit; anything else (a formulaic spec) gives None.
    """
    if not all(hasattr(info, a) for a in ("term_slices", "factor_infos", "term_codings")):
        return None
    terms, slices = [], []
    for term, sl in info.term_slices.items():
        if len(term.factors) == 0:
            terms.append(("one", None))
        elif len(term.factors) == 1:
            factor = term.factors[0]
            fi = info.factor_infos[factor]
            tree = _factor_tree(factor)
            if tree is None:
                return None
            if fi.type == "numerical":
                if fi.num_columns != 1 or fi.state.get("transforms") or _numeric_code(tree) is None:
                    return None
                terms.append(("num", tree))
            else:
                col = _categorical_column(tree)
                codings = info.term_codings[term]
                if col is None or len(codings) != 1:
                    return None
                contrast = np.asarray(codings[0].contrast_matrices[factor].matrix, dtype=float)
                terms.append(("cat", (col, list(fi.categories), contrast)))
        else:
            return None
        slices.append(sl)
    return DirectPlan(info, tuple(terms), tuple(slices))


def _eval_numeric(node: ast.AST, pairs: pd.DataFrame) -> np.ndarray | None:
    if isinstance(node, ast.Name):
        s = pairs[node.id]
        return s.to_numpy() if _numpy_numeric(s) else None
    inner = _eval_numeric(node.args[0], pairs)
    return None if inner is None else getattr(np, node.func.attr)(inner)


def _level_codes(s: pd.Series, levels: list, what: str) -> np.ndarray:
    """Position of each value in ``levels``; a value outside them is a ValueError."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    to_level = pd.Index(levels, dtype=object).get_indexer(pd.Index(uniques).astype(object))
    if (to_level < 0).any():
        unseen = sorted(np.asarray(uniques, dtype=object)[to_level < 0].tolist())
        raise ValueError(f"{what}: column {s.name!r} has level(s) {unseen} unseen in the fit "
                         f"(fitted levels: {levels})")
    if (codes < 0).any():  # NaN: check_missing names it before we get here
        raise ValueError(f"{what}: column {s.name!r} has missing values")
    return to_level[codes]


def same_plan(a: Any, b: Any) -> bool:
    """Whether two fitted designs (patsy DesignInfos) compute the same design for every
    pair table: both have direct plans (:func:`plan`) with the same columns, and the same
    terms (the same numeric codes; the same column, levels and contrast matrix for each
    categorical)."""
    pa, pb = plan(a), plan(b)
    if pa is None or pb is None or list(pa.info.column_names) != list(pb.info.column_names) \
            or pa.slices != pb.slices or len(pa.terms) != len(pb.terms):
        return False
    for (ka, va), (kb, vb) in zip(pa.terms, pb.terms):
        if ka != kb:
            return False
        if ka == "num" and ast.dump(va) != ast.dump(vb):
            return False
        if ka == "cat" and not (va[0] == vb[0] and list(va[1]) == list(vb[1]) and np.array_equal(va[2], vb[2])):
            return False
    return True


def evaluate(p: DirectPlan, pairs: pd.DataFrame, what: str = "predict") -> pd.DataFrame | None:
    """The design of plan ``p`` for ``pairs``, or None if a numeric column is not numpy-numeric.

    Raises
    ------
    KeyError
        A column of the formula is missing (the caller names it).
    ValueError
        A categorical level outside the fitted ones.
    """
    n = len(pairs)
    X = np.empty((n, len(p.info.column_names)), order="F")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # check_finite names it
        for (kind, payload), sl in zip(p.terms, p.slices):
            if kind == "one":
                X[:, sl] = 1.0
            elif kind == "num":
                v = _eval_numeric(payload, pairs)
                if v is None:
                    return None
                X[:, sl.start] = v
            else:
                col, levels, contrast = payload
                X[:, sl] = contrast[_level_codes(pairs[col], levels, what)]
    return pd.DataFrame(X, index=pairs.index, columns=list(p.info.column_names), copy=False)


_TREATMENT = re.compile(r"\bC\(\s*(\w+)\s*,\s*Treatment\(\s*(?:reference\s*=\s*)?(['\"])(.*?)\2")


def with_references(rhs: str, col: str, levels: list) -> list:
    """``levels`` plus the ``Treatment('...')`` reference of ``col`` in ``rhs`` when the data
    lack it (e.g. one region only, not NCR): patsy would reject the formula; with the
    reference among the levels, the other levels' dummies are built and, having no
    variation, dropped from the fit (:mod:`.collinear`)."""
    refs = [m[3] for m in _TREATMENT.finditer(rhs) if m[1] == col]
    extra = [r for r in refs if r not in levels]
    return sorted(levels + extra) if extra else levels


def _skeleton(rhs: str, pairs: pd.DataFrame) -> pd.DataFrame | None:
    """A small table with the pair table's numeric dtypes and every level of each ``C()``
    column (sorted, patsy's order for sniffed levels); None if a term is not supported."""
    import patsy

    desc = patsy.ModelDesc.from_formula(rhs)
    numeric, categorical = set(), {}
    for term in desc.rhs_termlist:
        if len(term.factors) > 1:
            return None
        for factor in term.factors:
            tree = _factor_tree(factor)
            if tree is None:
                return None
            col = _categorical_column(tree)
            if col is not None:
                categorical[col] = None
                continue
            col = _numeric_code(tree)
            if col is None or col not in pairs.columns or not _numpy_numeric(pairs[col]):
                return None
            numeric.add(col)
    if numeric & set(categorical) or not set(categorical) <= set(pairs.columns):
        return None
    for col in categorical:
        uniques = pd.unique(pairs[col].dropna())
        categorical[col] = with_references(rhs, col, sorted(np.asarray(uniques, dtype=object).tolist()))
    size = max([2] + [len(lv) for lv in categorical.values()])
    data = {c: np.ones(size, dtype=pairs[c].dtype) for c in numeric}
    for c, lv in categorical.items():
        data[c] = pd.Categorical.from_codes(np.arange(size) % len(lv),
                                            categories=pd.Index(lv, dtype=object))
    return pd.DataFrame(data)


def fit_design(pairs: pd.DataFrame, rhs: str, what: str = "fit_gravity"):
    """``(X, design_info)`` of formula right-hand side ``rhs`` on ``pairs``, or None.

    None when the formula engine is not patsy, a term is not supported, or patsy
    rejects the skeleton (the caller then runs the engine, which raises its own error).
    """
    from statsmodels.formula._manager import FormulaManager

    if FormulaManager().engine != "patsy":
        return None
    import patsy

    try:
        skeleton = _skeleton(rhs, pairs)
        if skeleton is None:
            return None
        info = patsy.dmatrix(rhs, skeleton, eval_env=patsy.EvalEnvironment([{"np": np}]),
                             return_type="dataframe").design_info
    except Exception:  # patsy.PatsyError, TypeError on unsortable levels: the engine says
        return None
    p = plan(info)
    X = None if p is None else evaluate(p, pairs, what)
    return None if X is None else (X, info)
