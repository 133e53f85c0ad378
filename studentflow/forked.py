"""Independent work of one run on the second core: a function run in a forked child process.

Most of a run holds the GIL (pandas, matplotlib, Python loops), so two threads only take
turns. A forked child starts with everything the parent has built (no pickling of the
inputs, no imports again) and runs on the other core; only its result comes back,
pickled through a pipe. :func:`start` forks and returns at once; :meth:`Pending.result`
waits for the child and returns what the function returned, re-raises what it raised
(its traceback text added as a note) and re-issues the warnings it emitted, so a caller
recording warnings sees the same ones as when the function runs here.

The function must not depend on side effects in this process (it runs in another one;
files it writes are written, objects it changes are not), and its result must pickle.

Off Linux (Windows has no fork; on macOS system libraries may crash in a forked child),
with fewer than two usable cores, with ``STUDENTFLOW_FORK=0`` in the environment, or
when the caller says so (``fork=False``), :func:`start` does not fork: the function runs
when :meth:`Pending.result` is called, in this process, with the same result. A caller
asks :func:`wanted` once per run: not on a busy machine (no core free, :func:`core_free`:
the child would only take turns with other processes, and forking costs CPU: copied
pages, files both processes read), unless ``STUDENTFLOW_FORK=1``.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
import warnings
from typing import Callable

__all__ = ["start", "Pending", "possible", "wanted", "core_free", "cpu_pressure", "procs_running"]


#: % of the last 10 s in which some task waited for a CPU (Linux's pressure stall information)
#: up to which a core counts as free
FREE_PRESSURE = 10.0


def possible() -> bool:
    """True when :func:`start` forks: on Linux (macOS's system libraries are not safe to use in a
    forked child, and Windows has no fork), with two cores or more usable, and
    ``STUDENTFLOW_FORK`` not "0"."""
    return (sys.platform.startswith("linux") and os.environ.get("STUDENTFLOW_FORK", "") != "0"
            and len(os.sched_getaffinity(0)) >= 2)


def wanted() -> bool:
    """Whether a run should fork its independent work: :func:`possible`, and a core free
    (:func:`core_free`) unless ``STUDENTFLOW_FORK=1``. Ask once, at the start of a run: its
    own forks make the CPU pressure that :func:`core_free` reads."""
    if not possible():
        return False
    return os.environ.get("STUDENTFLOW_FORK", "") == "1" or core_free(len(os.sched_getaffinity(0)))


def core_free(cores: int) -> bool:
    """Whether a core is free: no task had to wait for a CPU lately (at most
    :data:`FREE_PRESSURE` % of the last 10 s, ``/proc/pressure/cpu`` "some avg10"), or no
    other task is running now (``/proc/stat`` procs_running, this process included, at most
    ``cores`` less 1: just after another busy run ended, whose waiting the 10 s average still
    counts); where neither is reported, a one-minute load average at most ``cores`` less 0.5."""
    pressure = cpu_pressure()
    if pressure is not None and pressure <= FREE_PRESSURE:
        return True
    running = procs_running()
    if running is not None:
        return running <= cores - 1
    return pressure is None and os.getloadavg()[0] <= cores - 0.5


def procs_running(samples: int = 3) -> int | None:
    """Tasks running now, this one included (the least of ``samples`` reads 2 ms apart), or None."""
    import time

    seen = []
    for k in range(samples):
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                seen += [int(line.split()[1]) for line in fh if line.startswith("procs_running")]
        except (OSError, ValueError, IndexError):
            return None
        if k + 1 < samples:
            time.sleep(0.002)
    return min(seen) if seen else None


def cpu_pressure() -> float | None:
    """% of the last 10 s in which some task waited for a CPU, or None where not reported."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as fh:
            return float(fh.readline().split()[1].partition("=")[2])
    except (OSError, ValueError, IndexError):
        return None


class Pending:
    """The result of :func:`start`, to be collected once with :meth:`result`; as a context
    manager, :meth:`cancel` on an error in its block."""

    def __init__(self, fn: Callable, pid: int | None = None, fd: int | None = None):
        self._fn, self._pid, self._fd = fn, pid, fd

    def __enter__(self) -> "Pending":
        return self

    def __exit__(self, kind, value, tb) -> None:  # an error before the result was collected: stop the child
        if kind is not None:
            self.cancel()

    @property
    def forked(self) -> bool:
        """True when the function runs in a child process."""
        return self._pid is not None

    def result(self):
        """What the function returned (waits for the child), or raise what it raised."""
        if self._pid is None:
            fn, self._fn = self._fn, None
            if fn is None:
                raise RuntimeError("forked.Pending.result: already collected")
            return fn()
        with os.fdopen(self._fd, "rb") as fh:
            data = fh.read()
        _, status = os.waitpid(self._pid, 0)
        self._pid = self._fd = None
        if not data:
            raise RuntimeError(f"forked: the child process ended without a result (wait status {status})")
        ok, value, caught = pickle.loads(data)
        for message, category in caught:
            warnings.warn(message, category, stacklevel=2)
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        """Stop the child (if any) and reap it; :meth:`result` cannot be called after."""
        self._fn = None
        if self._pid is not None:
            import signal

            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(self._fd)
            os.waitpid(self._pid, 0)
            self._pid = self._fd = None


def start(fn: Callable, *, fork: bool = True) -> Pending:
    """Run ``fn()`` in a forked child process (``fork`` and :func:`available`), else later here.

    Parameters
    ----------
    fn : callable
        No arguments; its return value must pickle.
    fork : bool
        False: never fork (e.g. on large inputs, where the child's copy-on-write pages
        would add to the peak memory).

    Returns
    -------
    Pending
        ``result()`` gives ``fn()``'s return value.
    """
    if not (fork and possible()):
        return Pending(fn)
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns on forking a process with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        os.close(w)
        return Pending(fn, pid, r)
    try:  # the child: run, send the result, and leave without running any exit handler
        os.close(r)
        _send(w, _child(fn))
    finally:
        os._exit(0)


def _child(fn: Callable) -> bytes:
    """``fn()``'s pickled (ok, value or exception, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            payload = (True, fn())
        except BaseException as exc:  # noqa: BLE001 -- everything goes back to the parent
            exc.add_note("in the forked child process:\n" + "".join(traceback.format_exception(exc)))
            payload = (False, exc)
    notes = [(str(c.message), c.category) for c in caught]
    try:
        return pickle.dumps((*payload, notes), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        what = "result" if payload[0] else f"error ({type(payload[1]).__name__}: {payload[1]})"
        return pickle.dumps((False, RuntimeError(f"forked: the {what} does not pickle: {exc}"), notes))


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
