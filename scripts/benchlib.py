"""Helpers shared by the benchmark scripts: peak memory, and baselines loaded from git.

``python scripts/bench_*.py`` puts ``scripts/`` on the import path. Not part of the
package: psutil is a benchmark-only dependency.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]

GB = 2.0**30


class PeakRSS:
    """Context manager: peak resident memory (bytes) while the block runs.

    Parameters
    ----------
    children : bool
        Add the resident memory of every child process (Dask workers, nannies).
    every : float
        Sampling interval, seconds.

    Attributes
    ----------
    start, peak, end : int
        Resident bytes when the block starts, the highest sample, and at its end.
    """

    def __init__(self, children: bool = False, every: float = 0.02):
        self.children, self.every = children, every
        self.proc = psutil.Process()
        self.start = self.peak = self.end = 0
        self._stop = threading.Event()

    def _each(self):
        yield self.proc
        if self.children:
            yield from self.proc.children(recursive=True)

    def rss(self) -> int:
        """Resident bytes now (with the children if asked)."""
        total = 0
        for p in self._each():
            try:
                total += p.memory_info().rss
            except psutil.Error:  # a child that just ended
                pass
        return total

    def children_cpu(self) -> float:
        """CPU seconds (user + system) used so far by the live children (the workers)."""
        total = 0.0
        for c in self.proc.children(recursive=True):
            try:
                t = c.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.every)

    def __enter__(self):
        self.start = self.peak = self.rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.end = self.rss()
        self.peak = max(self.peak, self.end)


def load_baseline(module: str, commit: str):
    """``studentflow.<module>`` as it was at ``commit`` (read with ``git show``), loaded
    under the name ``_baseline_<module>`` so that it runs beside the current code."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:studentflow/{module}.py"],
                         check=True, capture_output=True, text=True).stdout
    name = f"_baseline_{module}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    exec(compile(src, f"{commit}:{module}.py", "exec"), mod.__dict__)
    return mod
