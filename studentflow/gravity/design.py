"""Design matrices of the gravity formula for fitting and for new pair tables.

Wraps statsmodels' formula machinery (patsy by default, formulaic if configured) with
errors that name the column, term and rows at fault, and feeds patsy categorical
columns as pandas Categoricals (fast, and unseen levels are caught by name). Designs
whose terms are all simple (the study's formula among them) are computed directly with
numpy by :mod:`studentflow.gravity.direct`, with patsy's column names and values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["design_matrix", "as_categoricals", "fitted_levels", "check_missing",
           "check_finite", "design_state", "design_from_state", "check_formula"]

def _engine_error(exc: Exception, pairs: pd.DataFrame, what: str) -> ValueError:
    """Turn a formula-engine error into a ValueError that names the problem."""
    msg = str(exc).splitlines()[0]
    if m := re.search(r"name '(\w+)' is not defined", msg):
        return ValueError(
            f"{what}: the formula names column {m[1]!r}, which the pair table does not "
            f"have (columns: {', '.join(map(str, pairs.columns))})"
        )
    if "does not match any of the expected levels" in msg:
        return ValueError(f"{what}: a categorical column has a level unseen in the fit: {msg}")
    if "missing values" in msg:
        bad = [c for c in pairs.columns if pairs[c].isna().any()]
        col = bad[0] if bad else "?"
        rows = list(pairs.index[pairs[col].isna()][:5]) if bad else []
        return ValueError(
            f"{what}: missing values (NaN) in column {col!r} at rows {rows} "
            f"(columns with NaN: {bad})"
        )
    return ValueError(f"{what}: could not build the design matrix: {msg}")


def _na_action():
    """Let NaN through the formula engine so that :func:`check_finite` can name it."""
    from statsmodels.formula._manager import FormulaManager

    if FormulaManager().engine == "patsy":
        import patsy

        return patsy.NAAction(NA_types=[])
    return "ignore"


_C_COL = re.compile(r"\bC\(\s*(\w+)")


def as_categoricals(pairs: pd.DataFrame, formula_text: str, what: str,
                    levels: Mapping[str, list] | None = None) -> pd.DataFrame:
    """Give the columns under ``C(...)`` a pandas Categorical dtype.

    patsy reads a Categorical by its codes instead of sniffing every value in Python
    (about 4 s saved per million pairs). ``levels`` (from a fit) fixes the categories;
    a value outside them is an error that names the column and the unseen levels.
    """
    cols = [c for c in dict.fromkeys(_C_COL.findall(formula_text)) if c in pairs.columns]
    new = {}
    for col in cols:
        s = pairs[col]
        values = list(s.dropna().unique())
        if levels is None:
            from studentflow.gravity.direct import with_references

            lv = with_references(formula_text, col, sorted(values))  # patsy's order for sniffed levels
        else:
            lv = list(levels.get(col, sorted(values)))
            unseen = sorted(set(values) - set(lv))
            if unseen:
                raise ValueError(f"{what}: column {col!r} has level(s) {unseen} unseen in "
                                 f"the fit (fitted levels: {lv})")
        codes = pd.Index(lv, dtype=object).get_indexer(s)  # NaN -> -1 (checked elsewhere)
        new[col] = pd.Categorical.from_codes(codes, categories=pd.Index(lv, dtype=object))
    return pairs.assign(**new) if new else pairs


def fitted_levels(design_info: Any) -> dict[str, list]:
    """Categorical levels of a fitted patsy design, keyed by data column."""
    out: dict[str, list] = {}
    for factor, info in getattr(design_info, "factor_infos", {}).items():
        m = _C_COL.search(factor.name())
        if info.type == "categorical" and m:
            out[m[1]] = list(info.categories)
    return out


def _formula_names(code: str) -> list[str]:
    """Data column names a factor's code reads (not functions, not ``np``)."""
    import ast

    tree = ast.parse(code, mode="eval")
    skip = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    skip |= {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return [n.id for n in ast.walk(tree)
            if isinstance(n, ast.Name) and id(n) not in skip and n.id not in ("np", "numpy")]


def check_formula(formula: str, columns, what: str = "formula") -> None:
    """Check that ``formula`` parses and names only ``columns``.

    Parameters
    ----------
    formula : str
        ``count ~ terms`` (patsy syntax; ``np`` and ``C(...)`` allowed).
    columns : iterable of str
        The columns the formula may name (e.g. :data:`studentflow.pairs.PAIR_COLUMNS`).
    what : str
        Name used in error messages.

    Raises
    ------
    ValueError
        No ``~``, a syntax error, or a term naming a column outside ``columns``: the
        message names the term and the column and lists the columns available.
    """
    import patsy

    cols = [str(c) for c in columns]
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"{what}: {formula!r} is not a formula: write 'count ~ term + term', "
                         f"e.g. 'esc_beneficiaries ~ np.log1p(distance_km)'")
    try:
        desc = patsy.ModelDesc.from_formula(formula)
        factors = [(f.name(), f.name()) for t in desc.lhs_termlist for f in t.factors]
        factors += [(t.name(), f.name()) for t in desc.rhs_termlist for f in t.factors]
        used = [(term, name) for term, code in factors for name in _formula_names(code)]
    except (patsy.PatsyError, SyntaxError) as exc:
        raise ValueError(f"{what}: cannot parse {formula!r}: {str(exc).splitlines()[0]}") from exc
    for term, name in used:
        if name not in cols:
            raise ValueError(f"{what}: term {term!r} names column {name!r}, which the pair table does "
                             f"not have; columns available: {', '.join(cols)}")


def design_state(design_info: Any, formula: str) -> dict:
    """A picklable recipe for a fitted design (patsy's ``DesignInfo`` does not pickle).

    The recipe is the formula's right-hand side, the fitted levels of each categorical
    column and the design's column names; :func:`design_from_state` rebuilds an
    equivalent design from it. Objects other than a patsy ``DesignInfo`` (e.g. a
    formulaic spec, which pickles) are kept as they are.

    Raises
    ------
    ValueError
        The design uses a stateful transform (``center``, ``standardize``, …) whose
        fitted state the recipe cannot carry.
    """
    infos = getattr(design_info, "factor_infos", None)
    if infos is None or not hasattr(design_info, "column_names"):
        return {"object": design_info}
    columns: dict[str, str] = {}
    levels: dict[str, list] = {}
    for factor, info in infos.items():
        if info.state.get("transforms"):
            raise ValueError(f"GravityModel cannot be pickled: term {factor.name()!r} uses a stateful "
                             f"transform; use stateless terms (np.log1p, C(...))")
        names = _formula_names(factor.name())
        if info.type == "categorical":
            for n in names[:1]:
                levels[n] = list(info.categories)
        else:
            columns.update(dict.fromkeys(names, "numeric"))
    return {"rhs": formula.split("~", 1)[1].strip(), "numeric": [c for c in columns if c not in levels],
            "levels": levels, "column_names": list(design_info.column_names)}


def design_from_state(state: dict) -> Any:
    """Rebuild the design of :func:`design_state` (same column names, same levels).

    Raises
    ------
    ValueError
        The rebuilt design's columns differ from the recorded ones.
    """
    if "object" in state:
        return state["object"]
    import patsy

    n = max([2] + [len(v) for v in state["levels"].values()])
    data = {c: np.ones(n) for c in state["numeric"]}
    for c, lv in state["levels"].items():
        data[c] = pd.Categorical.from_codes(np.arange(n) % len(lv), categories=pd.Index(lv, dtype=object))
    info = patsy.dmatrix(state["rhs"], pd.DataFrame(data), eval_env=patsy.EvalEnvironment([{"np": np}]),
                         return_type="dataframe").design_info
    if list(info.column_names) != state["column_names"]:
        raise ValueError(f"unpickled GravityModel: rebuilt design columns {info.column_names} differ "
                         f"from the fitted {state['column_names']}")
    return info


def check_missing(pairs: pd.DataFrame, formula_text: str, what: str) -> None:
    """Raise a ValueError naming a formula column with missing values and its rows."""
    for col in pairs.columns:
        if re.search(rf"\b{re.escape(str(col))}\b", formula_text) and pairs[col].isna().any():
            rows = list(pairs.index[pairs[col].isna()][:5])
            raise ValueError(f"{what}: column {col!r} has missing values at rows {rows} "
                             f"({int(pairs[col].isna().sum())} rows in all)")


def check_finite(X: pd.DataFrame, what: str) -> None:
    """Raise a ValueError naming the first non-finite design column and rows."""
    arr = X.to_numpy(dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        rows = list(X.index[bad[:, j]][:5])
        raise ValueError(
            f"{what}: non-finite value (NaN/inf) in term {X.columns[j]!r} at rows {rows} "
            f"({int(bad[:, j].sum())} rows in all); check the covariates (e.g. negative "
            f"values under a log)"
        )


def _direct_design(design_info: Any, pairs: pd.DataFrame, what: str) -> pd.DataFrame | None:
    """The design computed directly (:mod:`.direct`), or None for the formula engine."""
    from studentflow.gravity import direct

    p = direct.plan(design_info)
    if p is None:
        return None
    try:
        return direct.evaluate(p, pairs, what)
    except KeyError:  # a missing column: the engine's error names it
        return None


def design_matrix(design_info: Any, pairs: pd.DataFrame, what: str = "predict") -> pd.DataFrame:
    """Design matrix of a fitted formula for new pairs.

    Parameters
    ----------
    design_info : object
        The formula engine's right-hand-side spec of the fit (``GravityModel.design_info``).
    pairs : pandas.DataFrame
        Pair table with the covariate columns.
    what : str
        Name used in error messages.

    Returns
    -------
    pandas.DataFrame
        One row per pair, one column per term.

    Raises
    ------
    ValueError
        Missing column, NaN or non-finite covariate, unseen category level.
    """
    from statsmodels.formula._manager import FormulaManager

    if not isinstance(pairs, pd.DataFrame) or len(pairs) == 0:
        raise ValueError(f"{what}: pairs must be a non-empty DataFrame")
    names = getattr(design_info, "term_names", None) or []
    text = " ".join(map(str, names)) or str(design_info)
    check_missing(pairs, text, what)
    X = _direct_design(design_info, pairs, what)
    if X is not None:
        check_finite(X, what)
        return X
    data = pairs
    if FormulaManager().engine == "patsy":
        data = as_categoricals(pairs, text, what, fitted_levels(design_info))
    try:
        with np.errstate(invalid="ignore", divide="ignore"):  # check_finite names it
            X = FormulaManager().get_matrices(
                design_info, data, pandas=True, prediction=True, na_action=_na_action()
            )
    except Exception as exc:  # patsy.PatsyError / formulaic errors
        raise _engine_error(exc, pairs, what) from exc
    if len(X) != len(pairs):
        raise ValueError(f"{what}: {len(pairs) - len(X)} rows were dropped by the formula")
    check_finite(X, what)
    return X
