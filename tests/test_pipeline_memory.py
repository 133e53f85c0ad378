"""What `studentflow run` holds: the road distances are released once nothing reads them
(issue 22: the national run's peak), and the outputs stay the same byte for byte."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import studentflow.pipeline as pipeline
import studentflow.scenarios.run as scenario_run
from studentflow.scenarios.levers import needs_distances, pair_reach, widened_pairs
from studentflow.scenarios.result import interval
from studentflow.scenarios.spec import Scenario

SCENARIOS = [Scenario("now", baseline=True), Scenario("-5K", subsidy=5000)]
COMPARED = ("scenarios.csv", "public_jhs.csv", "esc_schools.csv", "esc_origins.csv.gz",
            "jhs_destinations.csv.gz", "ledger.csv", "model.txt")


@pytest.fixture(scope="module")
def runs(small_region, tmp_path_factory):
    """The small region run twice, distances kept and released (same seed)."""
    out = {}
    for keep in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            folder = tmp_path_factory.mktemp(f"keep{keep}") / "run"
            seen: dict = {}
            compute, run = pipeline.compute_distances, scenario_run.run_scenarios

            def watch_distances(*args, _compute=compute, _seen=seen, **kwargs):
                table = _compute(*args, **kwargs)
                _seen["ref"] = weakref.ref(table)
                return table

            def watch_scenarios(*args, _run=run, _seen=seen, **kwargs):
                gc.collect()
                _seen.setdefault("alive", []).append(_seen["ref"]() is not None)
                return _run(*args, **kwargs)

            mp.setattr(pipeline, "compute_distances", watch_distances)
            mp.setattr(scenario_run, "run_scenarios", watch_scenarios)
            res = pipeline.run_pipeline(small_region / "manifest.toml", scenarios=SCENARIOS, out_dir=folder,
                                        draws=3, seed=2, progress=False, keep_distances=keep)
        out[keep] = (res, folder, seen)
    return out


def test_released_distances_are_gone_before_the_scenarios(runs):
    kept, released = runs[True], runs[False]
    assert kept[0].distances is not None and all(kept[2]["alive"])
    assert released[0].distances is None
    assert released[2]["alive"] and not any(released[2]["alive"])  # every scenario run, main and comparisons


def test_released_distances_leave_every_output_the_same(runs):
    (a, dir_a, _), (b, dir_b, _) = runs[True], runs[False]
    for name in COMPARED:
        assert (dir_a / name).read_bytes() == (dir_b / name).read_bytes(), name
    pd.testing.assert_frame_equal(a.result.per_draw, b.result.per_draw, check_exact=False, rtol=1e-12)
    assert sorted(a.outputs) == sorted(b.outputs)


def test_a_wider_scenario_radius_keeps_the_distances(small_region, tmp_path, runs):
    res = runs[True][0]
    reach = pair_reach(res.pairs)
    wide = [SCENARIOS[0], Scenario("wide", radius_km=reach + 3.0)]
    assert needs_distances(wide, res.pairs) and not needs_distances(SCENARIOS, res.pairs)
    # needs_distances is exactly when a run builds the widened table
    assert widened_pairs(SCENARIOS, res.pairs, res.bundle, res.distances) is None
    assert widened_pairs(wide, res.pairs, res.bundle, res.distances) is not None
    again = pipeline.run_pipeline(small_region / "manifest.toml", scenarios=wide, out_dir=tmp_path / "w",
                                  draws=0, seed=2, progress=False, write=False, keep_distances=False)
    assert again.distances is not None
    pd.testing.assert_frame_equal(again.distances, res.distances)


@settings(max_examples=150, deadline=None)
@given(draws=st.integers(1, 300), cols=st.integers(1, 40), block=st.integers(1, 200),
       ints=st.booleans(), fortran=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_interval_in_column_blocks_gives_the_whole_arrays_figures(draws, cols, block, ints, fortran, seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 50, (draws, cols), dtype=np.int32) if ints else rng.normal(10, 3, (draws, cols))
    values = np.asfortranarray(values) if fortran else values  # a transposed product's layout
    whole = interval(values, block=values.size + 1)
    blocks = interval(values, block=block)
    for a, b in zip(whole, blocks):  # the same computation per column, in the same process
        np.testing.assert_array_equal(a, b)
        assert a.shape == (cols,)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 300), rows=st.integers(1, 120), seed=st.integers(0, 2**32 - 1))
def test_gzipped_csv_in_row_blocks_has_the_bytes_of_the_whole(tmp_path_factory, n, rows, seed):
    import gzip

    from studentflow.report.files import _write_csv, floats_as_text, mask_lrns
    from studentflow.report.names import spreadsheet_safe

    rng = np.random.default_rng(seed)
    text = np.array(["ok", "=SUM(A1)", "123456789012", "@x", "plain, comma", None], dtype=object)
    frame = pd.DataFrame({
        "school_id": pd.array(rng.choice(text[:5], n), dtype="string"), "note": rng.choice(text, n),
        "placed_mean": np.where(rng.random(n) < 0.1, np.nan, rng.normal(5, 3, n)),
        "observed_esc": rng.integers(-3, 40, n), "full": rng.random(n) < 0.5,
    })
    folder = tmp_path_factory.mktemp("gz")
    got = _write_csv(folder / "blocks.csv.gz", frame, rows=rows).read_bytes()
    whole = floats_as_text(spreadsheet_safe(mask_lrns(frame))).to_csv(index=False).encode("utf-8")
    assert got == gzip.compress(whole, compresslevel=3, mtime=0)  # what the one-shot writer wrote
    assert b"123456789012" not in gzip.decompress(got)


def test_arrow_buffers_come_from_the_system_allocator_after_ingest(sample_bundle):
    """Ingest switches pyarrow to glibc's malloc once (its own pool kept freed memory
    resident), unless the user chose a pool or STUDENTFLOW_MALLOC=default."""
    import os
    import subprocess
    import sys

    import pyarrow as pa

    from studentflow import malloc

    assert malloc.arrow_pool() is malloc.arrow_pool()  # asked once per process
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ and malloc.env_allows():
        assert pa.default_memory_pool().backend_name == "system"
    code = ("import pyarrow as pa; from studentflow import malloc; malloc.arrow_pool(); "
            "print(pa.default_memory_pool().backend_name)")
    env = {k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL", "STUDENTFLOW_MALLOC")}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    left = subprocess.run([sys.executable, "-c", code], env={**env, "STUDENTFLOW_MALLOC": "default"},
                          capture_output=True, text=True, check=True)
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"},
                            capture_output=True, text=True, check=True)
    assert default.stdout.strip() == "system"
    assert left.stdout.strip() != "system" and chosen.stdout.strip() == "mimalloc"
