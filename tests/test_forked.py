"""studentflow.forked: work run in a forked child gives what running it here gives."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from studentflow import forked
from studentflow.errors import DataError

needs_fork = pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                                reason="forks on Linux with two cores or more")


@pytest.fixture(autouse=True)
def _fork_whatever_the_load(monkeypatch):
    monkeypatch.setenv("STUDENTFLOW_FORK", "1")


@pytest.mark.parametrize("pressure", [None, 0.0])
def test_a_run_forks_on_a_busy_machine_only_when_asked(monkeypatch, pressure):
    """Busy: tasks waited for a CPU most of the last 10 s (or, where that is not reported, a load
    average above the cores); forced with STUDENTFLOW_FORK=1, never with 0."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    can = sys.platform.startswith("linux") and cores >= 2
    monkeypatch.setenv("STUDENTFLOW_FORK", "")
    monkeypatch.setattr(forked, "cpu_pressure", lambda: None if pressure is None else 80.0)
    monkeypatch.setattr(forked, "procs_running", lambda: None if pressure is None else cores + 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 1.0, 0.0, 0.0))
    assert not forked.wanted() and forked.possible() == can  # a caller that forks anyway (fork=True) may
    monkeypatch.setattr(forked, "procs_running", lambda: None if pressure is None else 1)
    assert forked.wanted() == (can and pressure is not None)  # waited lately, but nothing else runs now
    monkeypatch.setenv("STUDENTFLOW_FORK", "1")
    assert forked.wanted() == can
    monkeypatch.setenv("STUDENTFLOW_FORK", "")
    monkeypatch.setattr(forked, "cpu_pressure", lambda: pressure)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2 if pressure is None else cores + 1.0, 0.0, 0.0))
    assert forked.wanted() == can  # free: by pressure when reported (whatever the lagging load), else load
    monkeypatch.setenv("STUDENTFLOW_FORK", "0")
    assert not forked.wanted() and not forked.possible() and not forked.start(lambda: 1).forked


def test_cpu_pressure_and_running_tasks_read_the_kernels_figures():
    p, n = forked.cpu_pressure(), forked.procs_running()
    assert p is None or 0.0 <= p <= 100.0
    assert n is None or n >= 1  # this process is running


def _work(seed: int):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"school_id": [f"{i:06d}" for i in range(50)], "x": rng.normal(size=50)})
    return os.getpid(), frame


@needs_fork
def test_the_child_returns_what_the_function_returns_here():
    pending = forked.start(lambda: _work(3))
    assert pending.forked
    pid, got = pending.result()
    assert pid != os.getpid()
    pd.testing.assert_frame_equal(got, _work(3)[1])


def test_without_fork_the_function_runs_when_collected(monkeypatch):
    monkeypatch.setenv("STUDENTFLOW_FORK", "0")
    assert not forked.possible()
    calls = []
    pending = forked.start(lambda: calls.append(1) or _work(4))
    assert not pending.forked and calls == []
    pid, got = pending.result()
    assert pid == os.getpid() and calls == [1]
    with pytest.raises(RuntimeError, match="already collected"):
        pending.result()
    assert not forked.start(lambda: 1, fork=False).forked


@pytest.mark.parametrize("fork", [True, False])
def test_errors_and_warnings_come_back(fork):
    def bad():
        warnings.warn("a note from the side work", UserWarning)
        raise DataError("enrollment.xlsx: row 7, column 'school_id': not a 6-digit id")

    pending = forked.start(bad, fork=fork)
    in_child = pending.forked
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="row 7, column 'school_id'") as err:
            pending.result()
    assert [str(w.message) for w in caught] == ["a note from the side work"]
    assert any("forked child" in n for n in getattr(err.value, "__notes__", [])) == in_child

    def noisy():
        warnings.warn("alpha on its boundary", RuntimeWarning)
        return 5

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert forked.start(noisy, fork=fork).result() == 5
    assert [(str(w.message), w.category) for w in caught] == [("alpha on its boundary", RuntimeWarning)]


@needs_fork
def test_a_result_that_does_not_pickle_is_a_clear_error():
    with pytest.raises(RuntimeError, match="does not pickle"):
        forked.start(lambda: (lambda: 1)).result()


@needs_fork
def test_a_child_that_dies_is_an_error_and_cancel_reaps():
    with pytest.raises(RuntimeError, match="without a result"):
        forked.start(lambda: os._exit(3)).result()
    pending = forked.start(lambda: __import__("time").sleep(30))
    pending.cancel()
    assert not pending.forked
