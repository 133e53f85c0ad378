"""Backtest: fit on one school year, predict the next under its real levers, compare.

``studentflow.backtest(data, train=..., test=...)`` answers a budget officer's question:
*what did this model say about last year's change, and what actually happened?* See
:mod:`studentflow.backtesting.run` for the steps, :mod:`studentflow.backtesting.prepare` for what
the prediction may use (and the capacity rule), :mod:`studentflow.backtesting.score` for the
error keys shared by every predictor.
"""

from studentflow.backtesting.result import BacktestResult
from studentflow.backtesting.run import backtest

__all__ = ["BacktestResult", "backtest"]
