"""Files read ahead on threads (studentflow.ingest.prefetch): the bundle and errors of reading one by one."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

import studentflow.ingest.prefetch as prefetch
from studentflow.errors import DataError
from studentflow.ingest import load_bundle


def _load(manifest, threads: int, monkeypatch):
    monkeypatch.setattr(prefetch.thread_reader, "__defaults__", (threads,))
    return load_bundle(manifest)


def test_threads_give_the_bundle_of_one_by_one(sample_dir, monkeypatch):
    one = _load(sample_dir / "manifest.toml", 1, monkeypatch)
    two = _load(sample_dir / "manifest.toml", 2, monkeypatch)
    for name in ("flows", "areas", "subsidy", "ledger", "sources"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name), check_exact=True)
    pd.testing.assert_frame_equal(pd.DataFrame(one.schools), pd.DataFrame(two.schools), check_exact=True)
    assert (one.extras, one.school_year) == (two.extras, two.school_year)


def test_first_broken_file_in_manifest_order_is_named(sample_dir, tmp_path, monkeypatch):
    """Two broken files: the one the manifest lists first is reported, however the threads
    ran (the later, larger one is started first)."""
    folder = tmp_path / "sample"
    shutil.copytree(sample_dir, folder)
    (folder / "school_coordinates.csv").write_bytes(b"")  # listed 2nd
    (folder / "gr7_enrollees_region4a.csv.gz").write_bytes(b"\x1f\x8b not really gzip")  # listed later, larger
    messages = []
    for threads in (1, 2):
        with pytest.raises(DataError) as err:
            _load(folder / "manifest.toml", threads, monkeypatch)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "school_coordinates.csv" in messages[0]


def _forking(monkeypatch, on: bool):
    """The largest workbook read in a forked child (any size), or never forked."""
    monkeypatch.setattr(prefetch, "FORK_BYTES", 0 if on else None)
    monkeypatch.setenv("STUDENTFLOW_FORK", "1" if on else "0")


def test_workbook_read_in_a_forked_child_gives_the_same_bundle(sample_dir, monkeypatch):
    from studentflow import forked

    if not forked.possible():
        pytest.skip("no fork here (one core, or not Linux)")
    started = []
    real = forked.start
    monkeypatch.setattr(forked, "start", lambda fn, **k: started.append(1) or real(fn, **k))
    _forking(monkeypatch, True)
    two = _load(sample_dir / "manifest.toml", 2, monkeypatch)
    assert started == [1]  # one child: the largest workbook
    _forking(monkeypatch, False)
    one = _load(sample_dir / "manifest.toml", 2, monkeypatch)
    assert started == [1]
    for name in ("flows", "areas", "subsidy", "ledger", "sources"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name), check_exact=True)
    pd.testing.assert_frame_equal(pd.DataFrame(one.schools), pd.DataFrame(two.schools), check_exact=True)


def test_broken_forked_workbook_is_named_as_read_here(sample_dir, tmp_path, monkeypatch):
    from studentflow import forked

    if not forked.possible():
        pytest.skip("no fork here (one core, or not Linux)")
    folder = tmp_path / "sample"
    shutil.copytree(sample_dir, folder)
    (folder / "enrollment_sy2023-2024.xlsx").write_bytes(b"PK\x03\x04 not a workbook" * 20000)  # the largest
    started = []
    real = forked.start
    monkeypatch.setattr(forked, "start", lambda fn, **k: started.append(1) or real(fn, **k))
    messages = []
    for on in (True, False):
        _forking(monkeypatch, on)
        with pytest.raises(DataError) as err:
            _load(folder / "manifest.toml", 2, monkeypatch)
        messages.append(str(err.value))
    assert started == [1] and messages[0] == messages[1] and "enrollment_sy2023-2024.xlsx" in messages[0]
