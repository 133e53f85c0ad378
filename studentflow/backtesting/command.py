"""``studentflow backtest``: the command's options and what it prints and writes."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from studentflow.backtesting.prepare import MissingYears

__all__ = ["add_parser", "main"]


def add_parser(sub):
    """The ``backtest`` subcommand on an argparse subparsers object (returned, for the data
    options --zeros, --radius-km, --max-km and --formula the CLI adds to every fitting command)."""
    bt = sub.add_parser("backtest", help="fit on one school year, predict the next, compare with what happened",
                        description="Fit and calibrate on the train year, predict the test year under its real "
                                    "levers (pools, contracted slots, subsidy amounts, tuition, schools that "
                                    "opened or closed) and compare with the observed year, beside persistence, "
                                    "the study's estimator and (synthetic data) the truth. Writes backtest.csv, "
                                    "backtest.json, fig_backtest.png and backtest.html. Exit 0 when it ran, "
                                    "1 when the manifest has a single school year.")
    bt.add_argument("--data", metavar="MANIFEST", help="multi-year manifest.toml (or its folder); "
                    "default: the bundled sample")
    bt.add_argument("--train", metavar="YEAR", help="school year to fit on (default: the second latest)")
    bt.add_argument("--test", metavar="YEAR", help="school year to predict (default: the latest)")
    bt.add_argument("--draws", type=int, default=100, metavar="N", help="Monte Carlo draws (default 100)")
    bt.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    bt.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    bt.add_argument("--out", metavar="DIR", default="studentflow-output",
                    help="output folder (default: ./studentflow-output)")
    return bt


def main(args, say) -> int:
    """Run the backtest for parsed ``args``; ``say`` prints a progress line to stderr."""
    from studentflow.errors import DataError
    from studentflow.backtesting.run import backtest
    from studentflow.pipeline import check_manifest
    from studentflow.report.backtest_page import write_backtest

    if args.draws < 1:
        raise DataError(f"--draws: must be >= 1, got {args.draws}")
    try:
        with warnings.catch_warnings(record=True) as caught:  # estimator notes once each, not tracebacks
            warnings.simplefilter("always")
            res = backtest(check_manifest(args.data), train=args.train, test=args.test, draws=args.draws,
                           seed=args.seed, zeros=args.zeros, radius_km=args.radius_km, max_km=args.max_km,
                           formula=args.formula, log=say)
    except MissingYears as exc:
        print(f"studentflow: error: {exc}", file=sys.stderr)
        return 1
    for message in dict.fromkeys(str(w.message) for w in caught):
        say(f"note: {message}")
    written = write_backtest(res, args.out)
    if args.json:
        print(json.dumps(res.as_dict()))
    else:
        print(res.summary())
        print(f"outputs in {Path(args.out).resolve()}: " + ", ".join(sorted(written)))
    return 0
