"""Provenance of a run: ``run.json`` beside the outputs, and the output-folder guard.

``run.json`` says what produced an output folder, so two folders can be told apart and
a run repeated months later:

- ``tool`` ("studentflow"), ``status`` ("running" while the run goes on, then
  "complete" or "failed" with the error), ``started_utc``, ``finished_utc``;
- ``studentflow_version``, ``python``, ``platform``, ``libraries`` (installed versions of
  the numerical and geospatial libraries the results depend on);
- ``command``: the ``studentflow run`` command line with every option written out
  (null when the run came from Python with options the command line cannot express,
  e.g. Scenario objects or a custom formula), ``argv`` as typed, and ``call``: the
  :func:`studentflow.pipeline.run_pipeline` arguments, scenarios included as data, which
  :func:`rerun_arguments` turns back into keyword arguments;
- ``seed``, ``draws``, ``scenarios`` (every field of every scenario);
- ``data``: the manifest and every raw file it names, with size in bytes and SHA-256;
- ``ledger``: rows per action and per raw file (``sources``);
- ``timings``: seconds per stage; ``outputs``: size and SHA-256 of every file written.

A run writes ``run.json`` (status "running") before anything else, so a folder holding
one was made by studentflow. :func:`check_out_dir` refuses any other non-empty folder
unless ``overwrite`` is given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import shlex
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from studentflow.errors import DataError

__all__ = ["RUN_JSON", "LIBRARIES", "open_run", "close_run", "check_out_dir", "file_digest", "raw_files", "library_versions",
           "start_record", "finish_record", "write_run_json", "read_run_json", "rerun_arguments",
           "cli_command", "optimize_command"]

RUN_JSON = "run.json"
#: Distributions whose versions are recorded (those absent are recorded as null).
LIBRARIES = ("numpy", "scipy", "pandas", "geopandas", "shapely", "pyogrio", "pyproj", "pyarrow",
             "statsmodels", "matplotlib", "plotly", "python-calamine", "openpyxl", "psgc", "pandera",
             "numba", "dask", "distributed")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_digest(path) -> dict:
    """``{"bytes": size, "sha256": hex digest}`` of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return {"bytes": size, "sha256": h.hexdigest()}


def is_studentflow_folder(out) -> bool:
    """True if ``out`` holds a ``run.json`` written by studentflow."""
    try:
        data = json.loads((Path(out) / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("tool") == "studentflow"


def check_out_dir(out, overwrite: bool = False) -> None:
    """Refuse to write into a non-empty folder studentflow did not create.

    Raises
    ------
    DataError
        ``out`` is a file, or a non-empty folder without studentflow's ``run.json``,
        and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: output path exists and is not a folder (--out)")
    if overwrite or not out.is_dir() or is_studentflow_folder(out):
        return
    entries = sorted(p.name for p in out.iterdir())
    if entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise DataError(f"{out}: output folder is not empty ({len(entries)} entries: {shown}) and holds no "
                        f"studentflow {RUN_JSON}; choose a new --out folder, or pass --overwrite to write "
                        "into it anyway (files of the same names are replaced)")


def library_versions() -> dict:
    """Installed version of every distribution in :data:`LIBRARIES` (None if absent)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def raw_files(manifest=None) -> dict:
    """The manifest and every raw file it names, with size and SHA-256.

    ``manifest`` None: the bundled sample. Returns ``{"manifest": path, "manifest_sha256",
    "files": [{"kind", "file", "bytes", "sha256"}, ...]}`` in manifest order (a road
    distance matrix's index JSON is listed after it).
    """
    from studentflow.ingest.manifest import read_manifest
    from studentflow.paths import sample_manifest

    path = Path(manifest) if manifest is not None else sample_manifest()
    if path.is_dir():
        path = path / "manifest.toml"
    files = []
    for src in read_manifest(path):
        files.append({"kind": src.kind, "file": src.file, **file_digest(src.path)})
        if src.index is not None:
            rel = src.index.relative_to(path.parent.resolve()).as_posix()
            files.append({"kind": f"{src.kind} index", "file": rel, **file_digest(src.index)})
    return {"manifest": str(path.resolve()), "manifest_sha256": file_digest(path)["sha256"], "files": files}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return str(value)


def scenario_records(scenarios) -> list[dict]:
    """Every field of every scenario, as JSON-ready dicts (``Scenario(**d)`` rebuilds one)."""
    return [_jsonable(dataclasses.asdict(s)) for s in scenarios]


def cli_command(arguments: dict) -> list[str] | None:
    """The ``studentflow run`` command line equivalent to ``run_pipeline(**arguments)``,
    every option written out; None when the command line cannot express a choice
    (scenarios given as objects)."""
    a = arguments
    if isinstance(a.get("scenarios"), list):
        return None
    cmd = ["studentflow", "run"]
    if a.get("manifest") is not None:
        cmd += ["--data", str(a["manifest"])]
    if a.get("scenarios") is not None:
        cmd += ["--scenarios", str(a["scenarios"])]
    cmd += ["--out", str(a["out_dir"]), "--draws", str(a["draws"]), "--seed", str(a["seed"]),
            "--zeros", a["zeros"], "--radius-km", repr(float(a["radius_km"]))]
    if a.get("max_km") is not None:
        cmd += ["--max-km", repr(float(a["max_km"]))]
    cmd += ["--fit-method", a["fit_method"]]
    if a.get("formula") is not None:
        cmd += ["--formula", str(a["formula"])]
    if a.get("calibrate", True) is False:
        cmd += ["--no-calibrate"]
    if a.get("client"):
        cmd += ["--scheduler", str(a["client"])]
    if a.get("for_year") is not None:
        cmd += ["--for-year", str(a["for_year"])]
    return cmd


def optimize_command(arguments: dict) -> list[str]:
    """The ``studentflow optimize`` command line equivalent to
    :func:`studentflow.optimize_run.run_optimize` ``(**arguments)``, every option written out."""
    a = arguments
    cmd = ["studentflow", "optimize", "--budget", repr(float(a["budget"]))]
    if a.get("levers") is not None:
        cmd += ["--levers", str(a["levers"])]
    cmd += ["--budget-quantile", str(a.get("budget_quantile", "mean")), "--draws", str(a["draws"]),
            "--seed", str(a["seed"])]
    if a.get("manifest") is not None:
        cmd += ["--data", str(a["manifest"])]
    cmd += ["--zeros", a.get("zeros", "truncate"), "--radius-km", repr(float(a.get("radius_km", 5.0)))]
    if a.get("max_km") is not None:
        cmd += ["--max-km", repr(float(a["max_km"]))]
    if a.get("formula") is not None:
        cmd += ["--formula", str(a["formula"])]
    if a.get("for_year") is not None:
        cmd += ["--for-year", str(a["for_year"])]
    return cmd + ["--out", str(a["out_dir"])]


def start_record(arguments: dict, scenarios, *, argv=None, function: str = "studentflow.pipeline.run_pipeline",
                 command=cli_command) -> dict:
    """``run.json`` as written when a run starts (status "running").

    Parameters
    ----------
    arguments : dict
        The :func:`~studentflow.pipeline.run_pipeline` arguments (``manifest``,
        ``scenarios`` as a path, None or a list, ``out_dir``, ``draws``, ``seed``, ...).
    scenarios : list of Scenario
        The scenarios the run uses (recorded field by field).
    argv : list of str, optional
        The command line as typed, when the run came from ``studentflow run``.
    function, command
        The function called and the command line builder (``studentflow optimize``:
        ``"studentflow.optimize_run.run_optimize"`` and :func:`optimize_command`).
    """
    from studentflow import __version__

    args = dict(arguments)
    if isinstance(args.get("scenarios"), (list, tuple)):
        args["scenarios"] = scenario_records(args["scenarios"])
    for key in ("manifest", "scenarios", "out_dir", "levers"):
        if isinstance(args.get(key), (str, Path)):
            args[key] = str(Path(args[key]).resolve())
    if argv is not None and "--scheduler" in argv[:-1]:  # e.g. local:2, not the address it started
        args["client"] = argv[list(argv).index("--scheduler") + 1]
    command = command(args)
    record = {
        "tool": "studentflow", "status": "running", "started_utc": _now(), "finished_utc": None,
        "studentflow_version": __version__, "python": sys.version.split()[0],
        "python_build": sys.version, "platform": platform.platform(), "libraries": library_versions(),
        "command": command, "command_line": shlex.join(command) if command else None,
        "argv": list(argv) if argv is not None else None,
        "call": {"function": function, "arguments": _jsonable(args)},
        "seed": args.get("seed"), "draws": args.get("draws"),
        "scenarios": scenario_records(scenarios),
        "data": raw_files(arguments.get("manifest")),
    }
    scen = args.get("scenarios")
    if isinstance(scen, str):
        record["data"]["scenarios_file"] = {"file": scen, **file_digest(scen)}
    return record


def finish_record(record: dict, *, bundle=None, timings=None, outputs=None, error=None) -> dict:
    """``record`` completed: status, finish time, ledger counts, timings and outputs."""
    out = dict(record)
    out["status"] = "failed" if error is not None else "complete"
    if error is not None:
        out["error"] = f"{type(error).__name__}: {error}"
    out["finished_utc"] = _now()
    if bundle is not None:
        ledger = bundle.ledger
        out["ledger"] = {
            "rows": int(len(ledger)),
            "by_action": {str(k): int(v) for k, v in ledger["action"].value_counts().sort_index().items()},
            "sources": _jsonable(bundle.sources.to_dict(orient="records")) if len(bundle.sources) else [],
        }
    if timings is not None:
        out["timings"] = {k: round(float(v), 3) for k, v in timings.items()}
        out["timings"]["total"] = round(float(sum(timings.values())), 3)
    if outputs:
        out["outputs"] = {name: file_digest(p) for name, p in sorted(outputs.items())
                          if p is not None and Path(p).is_file()}
    return out


def write_run_json(out_dir, record: dict) -> Path:
    """Write ``record`` to ``out_dir/run.json`` atomically; returns the path."""
    from studentflow.report.files import atomic_write

    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    return atomic_write(Path(out_dir) / RUN_JSON, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_run_json(path) -> dict:
    """``run.json`` of an output folder (or the file itself); DataError if absent or not studentflow's."""
    path = Path(path)
    if path.is_dir():
        path = path / RUN_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable studentflow run.json ({exc})") from None
    if not isinstance(data, dict) or data.get("tool") != "studentflow":
        raise DataError(f"{path}: not a studentflow run.json")
    return data


def rerun_arguments(path, **changes) -> dict:
    """Keyword arguments of :func:`studentflow.pipeline.run_pipeline` that repeat a run.

    ``path``: a run.json or its folder. Scenarios recorded as data become Scenario objects
    again. ``changes`` override arguments (e.g. ``out_dir=`` a new folder).
    """
    from studentflow.scenarios.spec import Scenario

    args = dict(read_run_json(path)["call"]["arguments"])
    if isinstance(args.get("scenarios"), list):
        scen = []
        for d in args["scenarios"]:
            d = dict(d)
            d["add_slots_to"] = tuple(d.get("add_slots_to") or ())
            if d.get("subsidy_targeted") is not None:
                d["subsidy_targeted"] = tuple(d["subsidy_targeted"])
            scen.append(Scenario(**d))
        args["scenarios"] = scen
    args.update(changes)
    return args


def footer_html(record: dict) -> str:
    """The report's provenance footer: the same facts as ``run.json``, every text escaped."""
    import html

    import pandas as pd

    def esc(v) -> str:
        return html.escape("" if v is None else str(v))

    def table(frame: pd.DataFrame) -> str:
        from studentflow.report.tables import table_html

        return table_html(frame)

    libs = ", ".join(f"{k} {v}" for k, v in record.get("libraries", {}).items() if v)
    cmd = record.get("command_line")
    parts = ["<footer><h2>Provenance</h2><p class='note'>The same facts are in <code>run.json</code> "
             "beside this report.</p><p>",
             f"studentflow {esc(record.get('studentflow_version'))} · Python {esc(record.get('python'))} · "
             f"{esc(record.get('platform'))}<br>Libraries: {esc(libs)}<br>",
             f"Seed {esc(record.get('seed'))} · {esc(record.get('draws'))} Monte Carlo draws · "
             f"started {esc(record.get('started_utc'))}<br>"]
    if cmd:
        parts.append(f"Command (every option written out): <code>{esc(cmd)}</code>")
    else:
        parts.append("Run from Python: <code>run_pipeline(**arguments)</code> with the arguments in "
                     "run.json (<code>studentflow.report.provenance.rerun_arguments('run.json')</code>)")
    parts.append("</p>")
    data = record.get("data") or {}
    if data.get("files"):
        parts.append(f"<p>Raw files read (manifest {esc(data.get('manifest'))}, SHA-256 "
                     f"{esc(data.get('manifest_sha256'))}):</p>")
        parts.append(table(pd.DataFrame(data["files"])[["kind", "file", "bytes", "sha256"]]))
    ledger = record.get("ledger")
    if ledger:
        counts = ", ".join(f"{esc(k)} {v:,}" for k, v in ledger.get("by_action", {}).items())
        parts.append(f"<p>Ledger: {ledger['rows']:,} rows ({counts}).</p>")
    timings = record.get("timings")
    if timings:
        parts.append("<p>Stage timings (s): " + ", ".join(f"{esc(k)} {v:.1f}" for k, v in timings.items())
                     + "</p>")
    parts.append("</footer>")
    return "\n".join(parts)


def _client_address(client) -> str | None:
    """A Dask client as recorded in run.json: its address (a string is one already)."""
    if client is None or isinstance(client, str):
        return client
    try:
        return str(client.scheduler.address)
    except AttributeError:
        return repr(client)


def open_run(out_dir, arguments: dict, scenarios, *, overwrite: bool = False, argv=None, **kind) -> dict:
    """Start a run's record: check the folder (:func:`check_out_dir`), create it, write
    ``run.json`` with status "running"; returns the record for :func:`close_run`.

    ``arguments``: the :func:`~studentflow.pipeline.run_pipeline` arguments (a Dask
    ``client`` is recorded as its address); ``kind``: ``function`` and ``command`` of
    :func:`start_record` (another command's record)."""
    check_out_dir(out_dir, overwrite)
    record = start_record({**arguments, "client": _client_address(arguments.get("client"))}, scenarios,
                          argv=argv, **kind)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_run_json(out_dir, record)
    return record


def close_run(out_dir, record: dict, *, bundle=None, timings=None, outputs=None, error=None) -> Path:
    """Complete ``run.json`` (:func:`finish_record`: status, ledger, timings, outputs); returns its path."""
    return write_run_json(out_dir, finish_record(record, bundle=bundle, timings=timings, outputs=outputs,
                                                 error=error))
