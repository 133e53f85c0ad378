"""Dask backend: the scenario × draw sweep on a cluster equals the single-process run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.distributed")

from studentflow.scenarios.spec import Scenario  # noqa: E402
from studentflow.scenarios import run_scenarios  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SCENARIOS = [
    Scenario("status quo", baseline=True, capacity="billed"),
    Scenario("contracted", capacity="contracted"),
    Scenario("minus 10K", capacity="contracted", subsidy=10_000),
    Scenario("sequential", capacity="contracted", subsidy=5_000, method="sequential"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Bundle, pairs and a fitted model of a small synthetic region."""
    from studentflow.gravity import STUDY_FORMULA, fit_gravity
    from studentflow.ingest import load_bundle
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances
    from studentflow.synth import make_region

    out = tmp_path_factory.mktemp("region_dask")
    make_region(seed=3, scale=0.1, out_dir=out)
    bundle = load_bundle(out / "manifest.toml")
    pairs = build_pairs(bundle, compute_distances(bundle))
    model = fit_gravity(pairs, STUDY_FORMULA, zeros="truncate", method="fast")
    return bundle, pairs, model


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def _assert_same(a, b):
    for name in ("table", "per_draw", "esc_schools", "public_jhs", "params"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True, obj=name)
    for name in ("origin_placed", "school_placed", "origin_expected", "pools", "capacities"):
        da, db = getattr(a, name), getattr(b, name)
        assert list(da) == list(db)
        for k in da:
            np.testing.assert_array_equal(da[k], db[k], err_msg=f"{name}[{k}]")
    np.testing.assert_array_equal(a.origin_ids, b.origin_ids)
    np.testing.assert_array_equal(a.school_ids, b.school_ids)


def test_dask_sweep_equals_single_process(inputs, client):
    bundle, pairs, model = inputs
    kw = dict(pairs=pairs, draws=12, seed=11, progress=False)
    here = run_scenarios(bundle, model, SCENARIOS, **kw)
    there = run_scenarios(bundle, model, SCENARIOS, client=client, **kw)
    _assert_same(here, there)
    # the draws really differ and are really allocated: not a degenerate equality
    placed = here.origin_placed["minus 10K"].sum(axis=1)
    assert placed.min() > 0 and np.unique(placed).size > 1
    # another seed changes the result, through the cluster too
    other = run_scenarios(bundle, model, SCENARIOS[:2], client=client, **{**kw, "seed": 12})
    assert not np.array_equal(other.origin_placed["contracted"], here.origin_placed["contracted"])


def test_worker_processes_give_the_same_bits(inputs):
    """Worker processes receive pickled work units (other memory alignment, other BLAS
    threads): the result must still be bit-identical to the in-process run."""
    from dask.distributed import Client, LocalCluster

    bundle, pairs, model = inputs
    kw = dict(pairs=pairs, draws=4, seed=2, progress=False)
    here = run_scenarios(bundle, model, SCENARIOS[1:3], **kw)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        there = run_scenarios(bundle, model, SCENARIOS[1:3], client=c, **kw)
    _assert_same(here, there)


@pytest.mark.parametrize("layout", ["C", "F+8", "F+24"])
def test_expected_flows_do_not_depend_on_memory_layout(inputs, layout):
    """The same design matrix in another memory layout (C order, or column-major at
    another alignment, as a worker may receive it) gives the same μ, bit for bit."""
    from studentflow.scenarios.draws import DrawWork
    from studentflow.scenarios.work import _design

    _, pairs, model = inputs
    X, off = _design(model, pairs)
    X = np.asfortranarray(X)
    if layout == "C":
        moved = np.ascontiguousarray(X)
    else:
        shift = int(layout[2:])
        buf = np.zeros(X.size * 8 + shift + 64, dtype=np.uint8)
        start = (-buf.ctypes.data) % 64 + shift  # 64-byte aligned, then shifted
        moved = buf[start:start + X.size * 8].view(np.float64).reshape(X.shape, order="F")
        moved[...] = X
        assert moved.ctypes.data % 64 == shift
    rng = np.random.default_rng(len(layout))
    beta = model.params.to_numpy() + 0.01 * rng.standard_normal(len(model.params))

    def mu(M):
        return DrawWork("a", "balance", (M, off), None, *([None] * 6), None).expected(beta)

    a, b = mu(X), mu(moved)
    assert np.array_equal(a, b)
    np.testing.assert_allclose(a, np.exp(X @ beta + off), rtol=1e-12)


def test_compact_design_in_blocks_equals_the_float_design(inputs, monkeypatch):
    """The scenario work unit's design, compact and built in row blocks (here of 100
    pairs), gives the float design's expected flows bit for bit, with numba's kernel
    and without."""
    import studentflow.allocation.plan as apl
    import studentflow.scenarios.work as sw
    from studentflow.scenarios.draws import CompactDesign, DrawWork

    _, pairs, model = inputs
    monkeypatch.setattr(sw, "DESIGN_BLOCK", 100)
    monkeypatch.setattr(apl, "MIN_PAIRS", 0)
    assert len(pairs) > 2 * sw.DESIGN_BLOCK
    X, off = sw._design(model, pairs)
    D, off2 = sw._design(model, pairs, compact=True)
    assert isinstance(D, CompactDesign) and D.is_binary.any() and not D.is_binary.all()
    np.testing.assert_array_equal(off, off2)
    for k, col in enumerate(D.columns()):
        np.testing.assert_array_equal(col.astype(float), X[:, k])
    rng = np.random.default_rng(5)
    beta = model.params.to_numpy() + 0.05 * rng.standard_normal(len(model.params))

    def mu(design):
        return DrawWork("a", "balance", design, None, *([None] * 6), None).expected(beta)

    ref = mu((np.asfortranarray(X), off))
    for compiled in (True, False):
        monkeypatch.setattr(apl, "COMPILED", compiled)
        np.testing.assert_array_equal(mu((D, off)), ref)


def test_block_split_does_not_change_results(inputs, client):
    """More workers than draws, and a single draw (point estimate): same as in-process."""
    from studentflow.scenarios.sweep_dask import _blocks

    for n, w in ((1, 2), (5, 2), (100, 2), (7, 16)):
        blocks = _blocks(n, w)
        assert [d for b in blocks for d in b] == list(range(n))
    bundle, pairs, model = inputs
    kw = dict(pairs=pairs, draws=0, seed=5, progress=False)
    _assert_same(run_scenarios(bundle, model, SCENARIOS[:2], **kw),
                 run_scenarios(bundle, model, SCENARIOS[:2], client=client, **kw))


def test_plain_run_does_not_import_dask(tmp_path):
    code = f"""
import sys
from studentflow.scenarios.spec import Scenario
from studentflow.scenarios import run_scenarios
from studentflow.synth.pairs import make_pairs
import numpy as np, pandas as pd
from studentflow.synth.pairs import linear_predictor

class M:
    def __init__(self, p): self.params = pd.Series(p, dtype=float)
    def predict(self, pairs, params=None):
        return np.exp(linear_predictor(pairs, dict(self.params if params is None else params)))
    def draw_params(self, n, seed):
        rng = np.random.default_rng(seed)
        return pd.DataFrame(self.params.to_numpy() + 0.02 * rng.standard_normal((n, len(self.params))),
                            columns=self.params.index)

pairs = make_pairs(n_origins=30, dests_per_origin=5, seed=1)
res = run_scenarios(None, M(pairs.attrs["params"]), [Scenario("a", baseline=True)], pairs=pairs, draws=3)
assert res.table["placed_mean"].iloc[0] > 0
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
print("DASK_MODULES", bad)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "DASK_MODULES []" in out.stdout


def test_cli_scheduler_errors_are_one_line(tmp_path, capsys):
    from studentflow.cli import main

    code = main(["run", "--scheduler", "local:0", "--out", str(tmp_path / "o"), "--draws", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--scheduler" in err and "Traceback" not in err


def test_whole_pipeline_on_dask_equals_single_process(tmp_path, client):
    """Learner files, distances and the sweep on the cluster: every stage's output equal."""
    from studentflow.pipeline import run_pipeline
    from studentflow.synth import make_region

    make_region(seed=3, scale=0.1, out_dir=tmp_path / "r")
    kw = dict(scenarios=SCENARIOS[:3], draws=3, seed=1, write=False, max_km=12.0)
    here = run_pipeline(tmp_path / "r" / "manifest.toml", **kw)
    there = run_pipeline(tmp_path / "r" / "manifest.toml", client=client, **kw)
    for name in ("flows", "ledger", "sources"):
        pd.testing.assert_frame_equal(getattr(here.bundle, name), getattr(there.bundle, name), check_exact=True)
    pd.testing.assert_frame_equal(here.distances, there.distances, check_exact=True)
    pd.testing.assert_frame_equal(here.pairs, there.pairs, check_exact=True)
    _assert_same(here.result, there.result)
    assert len(here.distances) > 0 and here.result.table["placed_mean"].gt(0).all()


def test_plain_pipeline_does_not_import_dask(tmp_path):
    code = """
import sys
from studentflow.pipeline import run_pipeline
res = run_pipeline(None, draws=1, write=False, max_km=12.0)
assert res.result.table["placed_mean"].iloc[0] > 0
print("DASK_MODULES", sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "dask_geopandas")))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DASK_MODULES []" in out.stdout


def test_local_cluster_workers_get_large_malloc_thresholds():
    """distributed's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in workers by default, which
    made national draws 2.8x slower there; studentflow's local clusters raise both glibc
    thresholds before the workers start."""
    import os

    from dask.distributed import Client

    from studentflow.dask_client import WORKER_ENV, local_cluster

    with local_cluster(1) as cluster, Client(cluster) as c:
        env = c.run(lambda: {k: os.environ.get(k) for k in WORKER_ENV})
        threads = c.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert env and all(v == WORKER_ENV for v in env.values())
    assert set(threads.values()) == {"1"}  # the nanny's other settings are kept


def test_resolve_warns_about_workers_with_distributeds_malloc_default(monkeypatch):
    """A plain LocalCluster has the nanny's MALLOC_TRIM_THRESHOLD_: resolve() says so, once;
    studentflow's local_cluster and workers given large thresholds are not flagged."""
    import warnings

    from dask.distributed import Client, LocalCluster

    from studentflow.dask_client import (WORKER_ENV, WORKER_ENV_ADVICE, local_cluster, resolve,
                                         slow_malloc_workers)

    for k in WORKER_ENV:  # a nanny leaves its settings in this process's environment
        monkeypatch.delenv(k, raising=False)

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as c:
        assert slow_malloc_workers(c) == list(c.scheduler_info()["workers"])
        with pytest.warns(RuntimeWarning, match="MALLOC_TRIM_THRESHOLD_"):
            resolve(c)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            resolve(c)  # once per scheduler
    for kv in WORKER_ENV_ADVICE.split():  # the advice for clusters started elsewhere
        monkeypatch.setenv(*kv.split("="))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as c:
        assert slow_malloc_workers(c) == []
    for k in WORKER_ENV:
        monkeypatch.delenv(k, raising=False)
    with local_cluster(1) as cl, Client(cl) as c:
        assert slow_malloc_workers(c) == []


def _work_units_on_scheduler(client) -> int:
    """Scattered scenario work units the scheduler still holds."""
    return client.run_on_scheduler(
        lambda dask_scheduler: sum(str(k).startswith("DrawWork-") for k in dask_scheduler.tasks))


def _settled(client, bound, timeout=5.0) -> int:
    """Work units on the scheduler once releases (asynchronous) have arrived, up to ``timeout`` s."""
    import time

    end = time.monotonic() + timeout
    while (n := _work_units_on_scheduler(client)) > bound and time.monotonic() < end:
        time.sleep(0.05)
    return n


@pytest.mark.parametrize("in_flight", [1, 2])
def test_sweep_keeps_a_bounded_number_of_scenarios_in_flight(inputs, client, monkeypatch, in_flight):
    import studentflow.scenarios.sweep_dask as dist
    import studentflow.scenarios.run as sc

    bundle, pairs, model = inputs
    events = []  # ("build", work units on the cluster) / ("done", None), in order
    real_prepare, real_sweep = sc._prepare, dist.run_sweep

    def prepare(*args, **kwargs):
        events.append(("build", _settled(client, in_flight - 1)))
        return real_prepare(*args, **kwargs)

    def sweep(*args, **kwargs):
        for item in real_sweep(*args, **kwargs):
            events.append(("done", None))
            yield item

    monkeypatch.setattr(sc, "_prepare", prepare)
    monkeypatch.setattr(dist, "run_sweep", sweep)
    kw = dict(pairs=pairs, draws=6, seed=4, progress=False)
    there = run_scenarios(bundle, model, SCENARIOS, client=client, in_flight=in_flight, keep_draws=False, **kw)
    built = [e for e in events if e[0] == "build"]
    assert len(built) == len(SCENARIOS) and events.count(("done", None)) == len(SCENARIOS)
    open_ = 0
    for kind, on_cluster in events:
        if kind == "build":
            assert open_ < in_flight and on_cluster <= in_flight - 1, events
            open_ += 1
        else:
            open_ -= 1
    assert _settled(client, 0) == 0  # every work unit released after the sweep
    monkeypatch.undo()
    here = run_scenarios(bundle, model, SCENARIOS, **kw)
    for name in ("table", "per_draw", "esc_schools", "public_jhs", "params"):
        pd.testing.assert_frame_equal(getattr(there, name), getattr(here, name), check_exact=True, obj=name)
    assert there.origin_placed == {} and len(here.origin_placed) == len(SCENARIOS)
