"""Gravity: the stochastic gravity model of learner flows (PairTable → μ).

- :func:`fit_gravity` (:mod:`.fit`) → :class:`GravityModel` (:mod:`.model`): NB2 or
  Poisson, plain or zero-truncated, clustered standard errors, ``predict``, elasticities.
- :func:`compare_models`, :data:`STUDY_FORMULA`, :data:`NESTED_FORMULAS`.
- :func:`fit_panel_gravity` (:mod:`.panel`) → :class:`PanelGravityModel`: the pooled fit
  over several school years with year effects, predicting the latest year;
  :func:`build_panel_pairs` stacks every year's PairTable; :func:`pooled_fit` fits a
  Panel, by default with full ESC schools' counts censored (:mod:`.censored`,
  :func:`capacity_bound_years` says which school was full in which year).

Defaults: the zero-truncated NB2 on positive flows by the fast Newton path; the study's
model is ``zeros="drop"``, statsmodels' optimiser ``method="statsmodels"``.

Internals: :mod:`.design` (design matrices through the formula engine), :mod:`.direct`
(the same designs computed with numpy), :mod:`.newton` (the fast Newton estimator) and
:mod:`.likelihood` (its likelihoods and sandwiches), :mod:`.reference` (the statsmodels
fit), :mod:`.collinear` (collinear terms dropped), :mod:`.summary` (the text summary),
:mod:`.metrics` (SRMSE, CPC, deviance, dispersion tests, term labels).
"""

from studentflow.gravity.fit import (
    NESTED_FORMULAS, STUDY_FORMULA, AlphaBoundaryWarning, CollinearityWarning, GravityConvergenceWarning,
    GravityWarning, compare_models, fit_gravity,
)
from studentflow.gravity.collinear import DroppedTerm
from studentflow.gravity.design import design_matrix
from studentflow.gravity.model import DispersionTest, GravityModel
from studentflow.gravity.censored import capacity_bound_years
from studentflow.gravity.panel import PanelGravityModel, build_panel_pairs, fit_panel_gravity, pooled_fit

__all__ = [
    "STUDY_FORMULA", "NESTED_FORMULAS", "fit_gravity", "compare_models", "GravityModel",
    "DispersionTest", "design_matrix", "GravityWarning", "GravityConvergenceWarning",
    "AlphaBoundaryWarning", "CollinearityWarning", "DroppedTerm", "fit_panel_gravity", "build_panel_pairs",
    "PanelGravityModel", "pooled_fit", "capacity_bound_years",
]
