"""The ``studentflow`` command.

::

    studentflow run [--data MANIFEST] [--scenarios FILE] [--out DIR] [--draws N] [--seed N]
                    [--zeros truncate|include|drop] [--max-km KM] [--scheduler ADDRESS]
                    [--overwrite]
    studentflow optimize --budget PESOS [--levers FILE] [--draws N] [--data MANIFEST] [--out DIR]
                         [--scheduler ADDRESS]
    studentflow explain SCHOOL_ID [--out DIR] [--top N]
    studentflow make-sample OUT_DIR [--seed N] [--scale X]
    studentflow validate [--data MANIFEST] [--draws N] [--seed N] [--zeros ...] [--no-truth]
    studentflow check MANIFEST [--json]

Bad input (a :class:`~studentflow.errors.DataError`) ends the command with one line on
stderr and exit code 2, without a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from studentflow.errors import DataError

EXIT_DATA = 2


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
    run.add_argument("--zeros", choices=("truncate", "include", "drop"), default="truncate",
                     help="estimator for scenarios: zero-truncated NB2 on positive pairs (default), "
                          "NB2 on every pair of the table, zeros included (consistent only if the table "
                          "holds every pair learners could take), or the study's NB2 on positive pairs "
                          "(biased; for replication)")
    run.add_argument("--radius-km", type=float, default=5.0, metavar="KM",
                     help="road km within which new candidate pairs are drawn (default 5)")
    run.add_argument("--max-km", type=float, default=None, metavar="KM",
                     help="road distances only up to KM (default: every origin x ESC school; "
                          "use e.g. 15 at national scale); at least --radius-km")
    run.add_argument("--fit-method", choices=("fast", "statsmodels"), default="fast",
                     help="gravity optimiser (same estimates; default fast)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="run the scenario x draw sweep on a Dask cluster: scheduler address "
                          "(tcp://host:8786), or local:N for N local worker processes; needs "
                          "studentflow[dask]. Same results as without it")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    va.add_argument("--zeros", choices=("truncate", "include", "drop"), default="truncate",
                    help="estimator for the status quo and out-of-sample checks (default truncate)")
    va.add_argument("--no-truth", action="store_true", help="skip the comparison with a synthetic truth")

    opt = sub.add_parser("optimize", help="choose where a budget relieves most learners from congested public JHS",
                         description="Fit the model, then choose within --budget pesos per school year the ESC "
                                     "slots, subsidy increases (and, with a cost per seat, public JHS seats) that "
                                     "relieve most learners from congested public JHS. Writes plan.csv, "
                                     "frontier.csv, fig_frontier.png and optimize.html.")
    opt.add_argument("--budget", type=float, required=True, metavar="PESOS", help="pesos per school year")
    opt.add_argument("--levers", metavar="FILE", help="levers TOML (actions, step sizes, public seat cost); "
                     "see scenarios/optimize/levers.toml")
    opt.add_argument("--draws", type=int, default=20, metavar="N", help="Monte Carlo draws (default 20)")
    opt.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    opt.add_argument("--data", metavar="MANIFEST", help="manifest.toml (default: the bundled sample)")
    opt.add_argument("--out", metavar="DIR", default="studentflow-output", help="output folder")
    opt.add_argument("--scheduler", metavar="ADDRESS",
                     help="run the learner files, distances and the optimizer's full re-solves on a Dask "
                          "cluster: scheduler address (tcp://host:8786) or local:N (same plan as without)")

    ck = sub.add_parser("check", help="dry run: read every source of a manifest and report what was found",
                        description="Read every source of a manifest (no model, no report) and print, per "
                                    "source, the sheet and header row used, how each column matched, the rows "
                                    "read / kept / corrected / merged / remapped / dropped with the top ledger "
                                    "reasons, then the problems. Exit code 0 when a full run would proceed, "
                                    "1 otherwise.")
    ck.add_argument("manifest", metavar="MANIFEST", help="manifest.toml (or its folder)")
    ck.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    ms = sub.add_parser("make-sample", help="write a synthetic region as raw files plus truth/",
                        description="Write a synthetic study area in the real sources' layouts.")
    ms.add_argument("out_dir", metavar="OUT_DIR")
    ms.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    ms.add_argument("--scale", type=float, default=1.0, metavar="X",
                    help="institution count factor (1.0 ≈ 3,000 institutions)")
    return p


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _run(args) -> int:
    from studentflow.pipeline import STAGES, check_manifest, run_pipeline

    if args.draws < 0:
        raise DataError(f"--draws: must be >= 0, got {args.draws}")
    if args.radius_km <= 0:
        raise DataError(f"--radius-km: must be > 0 km, got {args.radius_km}")
    if args.max_km is not None and not args.max_km >= args.radius_km:
        raise DataError(f"--max-km: must be >= --radius-km ({args.radius_km} km), got {args.max_km}")
    if args.scenarios is not None and not Path(args.scenarios).is_file():
        raise DataError(f"{args.scenarios}: scenario file not found (--scenarios)")
    manifest = check_manifest(args.data)
    client = _client(args.scheduler) if args.scheduler is not None else None
    try:
        res = run_pipeline(
            manifest, scenarios=args.scenarios, out_dir=args.out, draws=args.draws,
            seed=args.seed, zeros=args.zeros, radius_km=args.radius_km, max_km=args.max_km,
            fit_method=args.fit_method, calibrate=not args.no_calibrate,
            progress=False if args.no_progress else None, log=_say, client=client,
            keep_draws=False,  # the written outputs do not need the per-draw arrays
            overwrite=args.overwrite, argv=["studentflow", *args.argv],
        )
    finally:
        if client is not None:
            from studentflow.dask_client import close

            close(client)
    print(res.result.summary())
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
    t0 = time.perf_counter()
    manifest = check_manifest(args.data)
    client = _client(args.scheduler) if args.scheduler is not None else None
    try:
        res, written, _ = run_optimize(manifest, budget=args.budget, levers=args.levers, out_dir=args.out,
                                       draws=args.draws, seed=args.seed, log=_say, client=client)
    finally:
        if client is not None:
            from studentflow.dask_client import close

            close(client)
    print(res.summary())
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
    with warnings.catch_warnings(record=True) as caught:  # estimator notes, once each, not tracebacks
        warnings.simplefilter("always")
        res = validate(check_manifest(args.data), draws=args.draws, seed=args.seed, zeros=args.zeros,
                       truth=not args.no_truth, log=_say)
    for message in dict.fromkeys(str(w.message) for w in caught):
        _say(f"note: {message}")
    print(res.summary())
    return 0


def _check(args) -> int:
    from studentflow.ingest import check_manifest

    report = check_manifest(args.manifest)
    print(report.to_json() if args.json else report.summary())
    return 0 if report.ok else 1


def _make_sample(args) -> int:
    from studentflow.synth import make_region

    if args.scale <= 0:
        raise DataError(f"--scale: must be > 0, got {args.scale}")
    t0 = time.perf_counter()
    info = make_region(seed=args.seed, scale=args.scale, out_dir=args.out_dir)
    summary = info.summary() if hasattr(info, "summary") else ""
    print(summary or f"synthetic region written to {args.out_dir}")
    _say(f"make-sample done in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``studentflow`` console script; returns the exit code."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command is None:
        parser.print_help()
        return 0
    try:
        commands = {"run": _run, "validate": _validate, "check": _check, "optimize": _optimize,
                    "explain": _explain,
                    "make-sample": _make_sample}
        return commands[args.command](args)
    except DataError as exc:
        if args.debug:
            raise
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"studentflow: error: {message}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("studentflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m studentflow.cli
    sys.exit(main())
