"""The ``studentflow`` command.

::

    studentflow run [--data MANIFEST] [--scenarios FILE] [--out DIR] [--draws N] [--seed N]
                    [DATA OPTIONS] [--scheduler ADDRESS] [--overwrite] [--for-year next]
    studentflow optimize --budget PESOS [--budget-quantile Q|mean] [--levers FILE] [--draws N]
                         [--data MANIFEST] [--out DIR] [--overwrite] [DATA OPTIONS] [--for-year next]
                         [--scheduler ADDRESS]
    studentflow explain SCHOOL_ID [--out DIR] [--top N]
    studentflow make-sample OUT_DIR [--seed N] [--scale X] [--years N]
    studentflow validate [--data MANIFEST] [--draws N] [--seed N] [DATA OPTIONS] [--no-truth]
    studentflow check MANIFEST [--json]
    studentflow backtest [--data MANIFEST] [--train YEAR] [--test YEAR] [--draws N] [--seed N] [--json]
                         [--out DIR] [DATA OPTIONS]
    studentflow explore [--data MANIFEST] [--port N] [--draws N] [--seed N]

DATA OPTIONS (every command that fits the model): [--zeros truncate|include|drop]
[--radius-km KM] [--max-km KM] [--formula 'esc_beneficiaries ~ ...'].

Bad input (a :class:`~studentflow.errors.DataError`) ends the command with one line on
stderr and exit code 2, without a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from studentflow.errors import DataError

EXIT_DATA = 2


def _data_options(sub: argparse.ArgumentParser) -> None:
    """The data options shared by the commands that fit the model (run, optimize, validate)."""
    sub.add_argument("--zeros", choices=("truncate", "include", "drop"), default="truncate",
                     help="estimator: zero-truncated NB2 on positive pairs (default), NB2 on every pair "
                          "within --radius-km, zeros included, or the study's NB2 on positive pairs "
                          "(biased; for replication)")
    sub.add_argument("--radius-km", type=float, default=5.0, metavar="KM",
                     help="road km within which new candidate pairs are drawn (default 5)")
    sub.add_argument("--max-km", type=float, default=None, metavar="KM",
                     help="road distances only up to KM (default: every origin x ESC school; "
                          "use e.g. 15 at national scale); at least --radius-km")
    sub.add_argument("--formula", metavar="FORMULA", default=None,
                     help="gravity formula 'esc_beneficiaries ~ terms' over the pair table's columns "
                          "(default: the study's); collinear terms are dropped with a note")
    sub.add_argument("--fit-years", choices=("all", "latest"), default="all",
                     help="multi-year manifest: the pooled NB2 (year effects, full schools' counts "
                          "censored) on every school year (default) or the latest year alone")


def _check_data_options(args) -> None:
    """DataError (one line, exit 2) for bad --radius-km, --max-km or --formula, before any work."""
    if args.radius_km <= 0:
        raise DataError(f"--radius-km: must be > 0 km, got {args.radius_km}")
    if args.max_km is not None and not args.max_km >= args.radius_km:
        raise DataError(f"--max-km: must be >= --radius-km ({args.radius_km} km), got {args.max_km}")
    if args.formula is not None:
        from studentflow.gravity.design import check_formula
        from studentflow.pairs import PAIR_COLUMNS

        try:
            check_formula(args.formula, PAIR_COLUMNS, "--formula")
        except ValueError as exc:
            raise DataError(str(exc)) from exc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="studentflow",
        description="Learner-flow modelling for school decongestion: ingest school data, fit the "
                    "gravity model, run ESC subsidy/slot scenarios and write a report.",
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="ingest → distances → pairs → fit → scenarios → report",
                         description="Run the whole pipeline and write the report. Without --data "
                                     "it runs on the bundled synthetic sample.")
    run.add_argument("--data", metavar="MANIFEST", help="manifest.toml of the raw files (or its folder); "
                     "default: the bundled sample")
    run.add_argument("--scenarios", metavar="FILE", help="scenario TOML file; default: the study's "
                     "scenarios (status quo, fill contracted slots, net cost -1K … -20K)")
    run.add_argument("--out", metavar="DIR", default="studentflow-output",
                     help="output folder (default: ./studentflow-output)")
    run.add_argument("--draws", type=int, default=100, metavar="N",
                     help="Monte Carlo draws of the gravity coefficients (default 100)")
    run.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    _data_options(run)
    run.add_argument("--fit-method", choices=("fast", "statsmodels"), default="fast",
                     help="gravity optimiser (same estimates; default fast)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="run the scenario x draw sweep on a Dask cluster: scheduler address "
                          "(tcp://host:8786), or local:N for N local worker processes; needs "
                          "studentflow[dask]. Same results as without it")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--for-year", choices=("next",), metavar="next",
                     help="plan the school year after the latest: origin pools from its Grade 6 enrolment x "
                          "the observed Grade 6 -> 7 transition shares, with their uncertainty")
    run.add_argument("--overwrite", action="store_true",
                     help="write into --out even if it is a non-empty folder that studentflow did not "
                          "create (one without its run.json)")

    ex = sub.add_parser("explain", help="where one public JHS's Grade 7 learners go / where one ESC "
                                        "school's learners come from, per scenario",
                        description="Drill down on one school in a finished run's output folder (no re-run): "
                                    "for a public JHS, where the Grade 7 learners it receives today go under "
                                    "each scenario; for an ESC school, which origin schools its learners "
                                    "come from; means with 95 %% intervals over the run's draws.")
    ex.add_argument("school_id", metavar="SCHOOL_ID", help="6-digit DepEd school id")
    ex.add_argument("--out", metavar="DIR", default="studentflow-output",
                    help="output folder of `studentflow run` (default: ./studentflow-output)")
    ex.add_argument("--top", type=int, default=8, metavar="N", help="largest flows listed per scenario (default 8)")
    run.add_argument("--no-calibrate", action="store_true",
                     help="run the scenarios on the model as fitted, without calibrating the status quo "
                          "to the observed ESC placements per school")

    va = sub.add_parser("validate", help="status quo vs observed, out-of-sample check, errors vs the truth",
                        description="Check the model: the calibrated status quo against the observed ESC "
                                    "placements, one origin region held out at a time (fit on the rest), "
                                    "and, on a synthetic region, scenario changes against its truth.")
    va.add_argument("--data", metavar="MANIFEST", help="manifest.toml (or its folder); default: the bundled sample")
    va.add_argument("--draws", type=int, default=20, metavar="N", help="Monte Carlo draws (default 20)")
    va.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    _data_options(va)
    va.add_argument("--no-truth", action="store_true", help="skip the comparison with a synthetic truth")

    opt = sub.add_parser("optimize", help="choose where a budget relieves most learners from congested public JHS",
                         description="Fit the model, then choose within --budget pesos per school year the ESC "
                                     "slots, subsidy increases (and, with a cost per seat, public JHS seats) that "
                                     "relieve most learners from congested public JHS. Writes "
                                     "plan_by_school.csv, plan.csv, plan.toml, frontier.csv, fig_frontier.png, "
                                     "optimize.html and run.json.")
    opt.add_argument("--budget", type=float, required=True, metavar="PESOS", help="pesos per school year")
    opt.add_argument("--levers", metavar="FILE", help="levers TOML (actions, step sizes, public seat cost); "
                     "see scenarios/optimize/levers.toml")
    opt.add_argument("--draws", type=int, default=20, metavar="N", help="Monte Carlo draws (default 20)")
    opt.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    opt.add_argument("--data", metavar="MANIFEST", help="manifest.toml (default: the bundled sample)")
    opt.add_argument("--budget-quantile", default="0.95", metavar="Q",
                     help="the plan's cost stays within --budget in at least this share of the draws "
                          "(default 0.95); 'mean': its mean cost does")
    opt.add_argument("--out", metavar="DIR", default="studentflow-output", help="output folder")
    opt.add_argument("--scheduler", metavar="ADDRESS",
                     help="run the learner files, distances and the optimizer's full re-solves on a Dask "
                          "cluster: scheduler address (tcp://host:8786) or local:N (same plan as without)")
    opt.add_argument("--overwrite", action="store_true",
                     help="write into --out even if it is a non-empty folder that studentflow did not create")
    opt.add_argument("--for-year", choices=("next",), metavar="next",
                     help="plan the school year after the latest (pools forecast from its Grade 6)")
    _data_options(opt)

    ck = sub.add_parser("check", help="dry run: read every source of a manifest and report what was found",
                        description="Read every source of a manifest (no model, no report) and print, per "
                                    "source, the sheet and header row used, how each column matched, the rows "
                                    "read / kept / corrected / merged / remapped / dropped with the top ledger "
                                    "reasons, then the problems. Exit code 0 when a full run would proceed, "
                                    "1 otherwise.")
    ck.add_argument("manifest", metavar="MANIFEST", help="manifest.toml (or its folder)")
    ck.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    from studentflow.backtesting.command import add_parser as add_backtest

    _data_options(add_backtest(sub))

    ms = sub.add_parser("make-sample", help="write a synthetic region as raw files plus truth/",
                        description="Write a synthetic study area in the real sources' layouts.")
    ms.add_argument("out_dir", metavar="OUT_DIR")
    ms.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    ms.add_argument("--scale", type=float, default=1.0, metavar="X",
                    help="institution count factor (1.0 ≈ 3,000 institutions)")
    ms.add_argument("--years", type=int, default=1, metavar="N",
                    help="consecutive school years of one evolving world (default 1; the latest is the "
                         "same as with 1, earlier ones have their own files and truth/<school_year>/)")
    xp = sub.add_parser("explore", help="a local web page: move a lever, see the answer in a second",
                        description="Fit and calibrate once, then serve a what-if page on this machine.")
    xp.add_argument("--data", metavar="MANIFEST", help="manifest.toml (default: the bundled sample)")
    xp.add_argument("--port", type=int, default=8050, metavar="N", help="port (default 8050)")
    xp.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                    help="address to bind (default 127.0.0.1: this machine only)")
    xp.add_argument("--draws", type=int, default=20, metavar="N", help="draws behind each interval (default 20)")
    xp.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    xp.add_argument("--max-km", type=float, default=None, metavar="KM", help="road distance limit, km")
    return p


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _run(args) -> int:
    from studentflow.pipeline import STAGES, check_manifest, run_pipeline

    if args.draws < 0:
        raise DataError(f"--draws: must be >= 0, got {args.draws}")
    _check_data_options(args)
    if args.scenarios is not None and not Path(args.scenarios).is_file():
        raise DataError(f"{args.scenarios}: scenario file not found (--scenarios)")
    manifest = check_manifest(args.data)
    client = _client(args.scheduler) if args.scheduler is not None else None
    try:
        res = run_pipeline(
            manifest, scenarios=args.scenarios, out_dir=args.out, draws=args.draws,
            seed=args.seed, zeros=args.zeros, radius_km=args.radius_km, max_km=args.max_km,
            fit_method=args.fit_method, formula=args.formula, calibrate=not args.no_calibrate,
            progress=False if args.no_progress else None, log=_say, client=client,
            keep_draws=False,  # the written outputs do not need the per-draw arrays
            keep_distances=False,  # nor the road distances, once the pairs are built
            overwrite=args.overwrite, argv=["studentflow", *args.argv], fit_years=args.fit_years, for_year=args.for_year,
        )
    finally:
        if client is not None:
            from studentflow.dask_client import close

            close(client)
    print(res.result.summary())
    print(f"model for scenarios: {next(iter(res.models))}")
    if "school_year" in res.result.table:  # --for-year next
        print(f"forecast for school year {res.result.table['school_year'].iloc[0]}")
    print("stage timings:")
    for name in STAGES:
        if name in res.timings:
            print(f"  {name:<10} {res.timings[name]:7.1f} s")
    print(f"  {'total':<10} {sum(res.timings.values()):7.1f} s")
    print(f"outputs in {Path(args.out).resolve()}: " + ", ".join(sorted(res.outputs)))
    return 0


def _client(address: str):
    """Dask client for --scheduler, or DataError (exit 2) naming the option."""
    from studentflow.dask_client import connect

    try:
        client = connect(address)
    except ImportError as exc:
        raise DataError(f"--scheduler: Dask is not installed ({exc}); pip install 'studentflow[dask]'") from exc
    except ValueError as exc:
        raise DataError(f"--scheduler: {exc}") from exc
    _say(f"learner files, distances and the scenario sweep on Dask scheduler {client.scheduler.address} "
         f"({len(client.scheduler_info().get('workers', {}))} workers)")
    return client


def _optimize(args) -> int:
    from studentflow.optimize_run import run_optimize
    from studentflow.pipeline import check_manifest

    if not args.budget >= 0:
        raise DataError(f"--budget: must be >= 0 pesos, got {args.budget}")
    if args.draws < 0:
        raise DataError(f"--draws: must be >= 0, got {args.draws}")
    if args.levers is not None and not Path(args.levers).is_file():
        raise DataError(f"{args.levers}: levers file not found (--levers)")
    _check_data_options(args)
    t0 = time.perf_counter()
    manifest = check_manifest(args.data)
    client = _client(args.scheduler) if args.scheduler is not None else None
    try:
        res, written, _ = run_optimize(manifest, budget=args.budget, levers=args.levers, out_dir=args.out,
                                       draws=args.draws, seed=args.seed, log=_say,
                                       budget_quantile=args.budget_quantile, overwrite=args.overwrite,
                                       argv=["studentflow", *args.argv], zeros=args.zeros,
                                       radius_km=args.radius_km, max_km=args.max_km, formula=args.formula,
                                       fit_years=args.fit_years, for_year=args.for_year, client=client)
    finally:
        if client is not None:
            from studentflow.dask_client import close

            close(client)
    print(res.summary())
    if "school_year" in res.frontier:  # --for-year next
        print(f"plan for school year {res.frontier['school_year'].iloc[0]}")
    print(f"total {time.perf_counter() - t0:.1f} s; outputs in {Path(args.out).resolve()}: " + ", ".join(sorted(written)))
    return 0


def _explain(args) -> int:
    from studentflow.report.explain import explain

    if args.top < 1:
        raise DataError(f"--top: must be >= 1, got {args.top}")
    print(explain(args.school_id, args.out).summary(top=args.top))
    return 0


def _validate(args) -> int:
    from studentflow.pipeline import check_manifest
    from studentflow.validate import validate

    if args.draws < 1:
        raise DataError(f"--draws: must be >= 1, got {args.draws}")
    _check_data_options(args)
    with warnings.catch_warnings(record=True) as caught:  # estimator notes, once each, not tracebacks
        warnings.simplefilter("always")
        res = validate(check_manifest(args.data), draws=args.draws, seed=args.seed, zeros=args.zeros,
                       radius_km=args.radius_km, max_km=args.max_km, formula=args.formula,
                       truth=not args.no_truth, log=_say, fit_years=args.fit_years)
    for message in dict.fromkeys(str(w.message) for w in caught):
        _say(f"note: {message}")
    print(res.summary())
    return 0


def _backtest(args) -> int:
    from studentflow.backtesting.command import main as backtest_main

    _check_data_options(args)
    return backtest_main(args, _say)


def _check(args) -> int:
    from studentflow.ingest import check_manifest

    report = check_manifest(args.manifest)
    print(report.to_json() if args.json else report.summary())
    return 0 if report.ok else 1


def _make_sample(args) -> int:
    from studentflow.synth import make_region

    if args.scale <= 0:
        raise DataError(f"--scale: must be > 0, got {args.scale}")
    if args.years < 1:
        raise DataError(f"--years: must be >= 1, got {args.years}")
    t0 = time.perf_counter()
    if args.years > 1:
        from studentflow.synth import make_years

        info = make_years(seed=args.seed, scale=args.scale, out_dir=args.out_dir, years=args.years)
    else:
        info = make_region(seed=args.seed, scale=args.scale, out_dir=args.out_dir)
    summary = info.summary() if hasattr(info, "summary") else ""
    print(summary or f"synthetic region written to {args.out_dir}")
    _say(f"make-sample done in {time.perf_counter() - t0:.1f} s")
    return 0


def _explore(args) -> int:
    from studentflow.explore import make_server, start_session
    from studentflow.pipeline import check_manifest

    if not 1 <= args.draws <= 1000:
        raise DataError(f"--draws: must be between 1 and 1000, got {args.draws}")
    if not 0 <= args.port <= 65535:
        raise DataError(f"--port: must be between 0 and 65535, got {args.port}")
    t0 = time.perf_counter()
    session = start_session(check_manifest(args.data), draws=args.draws, seed=args.seed, max_km=args.max_km,
                            log=_say)
    try:
        server = make_server(session, host=args.host, port=args.port)
    except OSError as exc:
        raise DataError(f"--port: cannot listen on {args.host}:{args.port} ({exc.strerror})") from None
    _say(f"ready in {time.perf_counter() - t0:.1f} s: open http://{args.host}:{server.port}/ (Ctrl-C stops it)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def main(argv=None) -> int:
    """Entry point of the ``studentflow`` console script; returns the exit code."""
    parser = _parser()
    console = argv is None  # the command line's own process (not a caller's, e.g. a test's)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command is None:
        parser.print_help()
        return 0
    try:
        commands = {"run": _run, "validate": _validate, "check": _check, "optimize": _optimize,
                    "explain": _explain, "explore": _explore, "backtest": _backtest,
                    "make-sample": _make_sample}
        code = commands[args.command](args)
    except DataError as exc:
        if args.debug:
            raise
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"studentflow: error: {message}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("studentflow: interrupted", file=sys.stderr)
        return 130
    if console and args.command == "run":  # every file written and closed, every child reaped: leave without
        sys.stdout.flush()                   # freeing the run's objects one by one at interpreter exit (0.2-0.5 s)
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":  # python -m studentflow.cli
    sys.exit(main())
